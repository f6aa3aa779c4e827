import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MessageWriter } from "../../server/rooms/message-writer.ts";
import { registerUser } from "../helpers/factories.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

let s: TestServer;
let author: string;
let rooms: string[];

beforeAll(async () => {
  s = await startServer();
  const u = await registerUser(s.url);
  author = u.me.user.id;
  rooms = [];
  for (const name of ["one", "two"]) {
    rooms.push((await s.deps.rooms.create({ id: author, role: "admin" }, { name, topic: "", language: "en" })).id);
  }
});
afterAll(() => s.close());

describe("batched message writes", () => {
  it("numbers a mixed batch gap-free per room, in arrival order", async () => {
    const writer = new MessageWriter(s.deps.dbh.statements);
    const writes = Array.from({ length: 60 }, (_, i) =>
      writer.write({ roomId: rooms[i % 2] as string, authorId: author, body: `b${i}` }),
    );
    const stored = await Promise.all(writes);
    for (const [r, roomId] of rooms.entries()) {
      const seqs = stored.filter((_, i) => i % 2 === r).map((m) => m.seq);
      expect(seqs).toEqual(Array.from({ length: 30 }, (_, k) => k + 1));
      expect(await s.deps.rooms.lastSeq(roomId)).toBe(30);
    }
    const history = await s.deps.chat.history(rooms[0] as string, author, undefined, 100);
    expect(history.items.map((m) => m.body).reverse()).toEqual(Array.from({ length: 30 }, (_, k) => `b${2 * k}`));
  });

  it("fails only the message whose room does not exist, not the rest of its batch", async () => {
    const writer = new MessageWriter(s.deps.dbh.statements);
    const good = writer.write({ roomId: rooms[1] as string, authorId: author, body: "fine" });
    const bad = writer.write({ roomId: randomUUID(), authorId: author, body: "nowhere" });
    const alsoGood = writer.write({ roomId: rooms[1] as string, authorId: author, body: "fine too" });
    await expect(bad).rejects.toThrow();
    const [a, b] = await Promise.all([good, alsoGood]);
    expect(b.seq).toBe(a.seq + 1);
  });
});
