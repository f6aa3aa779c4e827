import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import * as Y from "yjs";
import { insertCell, readNotebook } from "../../shared/notebook/model.ts";
import { READ_ONLY_REASON } from "../../shared/notebook/protocol.ts";
import type { Room } from "../../shared/schemas/rooms.ts";
import { type Editor, jsonOf, notebookOf, openEditor, tokenOf } from "../helpers/collab.ts";
import { registerUser, type TestUser, waitFor } from "../helpers/factories.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
let owner: TestUser;
let member: TestUser;
let observer: TestUser;
let room: Room;
const editors: Editor[] = [];

async function editor(u: TestUser, notebookId: string, options?: Parameters<typeof openEditor>[3]) {
  const e = await openEditor(server.url, notebookId, await tokenOf(u.client), options);
  editors.push(e);
  return e;
}

beforeAll(async () => {
  server = await startServer();
  [owner, member, observer] = (await Promise.all(
    ["Owner", "Member", "Observer"].map((name) => registerUser(server.url, name)),
  )) as [TestUser, TestUser, TestUser];
  room = (await owner.client.post<Room>("/api/v1/rooms", { name: "Notebook", topic: "", language: "en" })).body;
  for (const u of [member, observer])
    expect((await u.client.post(`/api/v1/rooms/join`, { code: room.inviteCode })).status).toBe(200);
  const res = await owner.client.patch(`/api/v1/rooms/${room.id}/members/${observer.me.user.id}`, { role: "observer" });
  expect(res.status).toBe(200);
});
afterEach(() => {
  for (const e of editors.splice(0)) e.close();
});
afterAll(() => server?.close());

describe("a room's notebook over the y-websocket protocol", () => {
  it("syncs two stock WebsocketProvider clients, and a late one gets everything", async () => {
    const nb = await notebookOf(owner.client, room.id);
    expect(nb).toMatchObject({ roomId: room.id, locked: false, writable: true, canManage: true });
    const a = await editor(owner, nb.id);
    const b = await editor(member, nb.id);
    const cell = insertCell(a.doc, 0, { type: "code", source: "print('hi')" });
    b.doc.getArray("cells").length === 0 ? undefined : null;
    await waitFor(() => jsonOf(b.doc) === jsonOf(a.doc) && b.doc.getArray("cells").length === 1);
    // Concurrent edits on both sides converge.
    const source = cell.get("source") as Y.Text;
    source.insert(0, "# A\n");
    const bSource = (b.doc.getArray<Y.Map<unknown>>("cells").get(0) as Y.Map<unknown>).get("source") as Y.Text;
    bSource.insert(bSource.length, "\n# B");
    await waitFor(() => jsonOf(a.doc) === jsonOf(b.doc) && source.toString().includes("# B"));
    expect(source.toString()).toBe("# A\nprint('hi')\n# B");
    const late = await editor(member, nb.id);
    expect(readNotebook(late.doc)).toEqual(readNotebook(a.doc));
  });

  it("unloads a notebook from memory once nobody is connected, and loads it again on the next connection", async () => {
    const nb = await notebookOf(owner.client, room.id);
    const a = await editor(owner, nb.id);
    insertCell(a.doc, 0, { type: "markdown", source: "kept while unloaded" });
    const hub = server.deps.notebooks.hub;
    await waitFor(() => hub.get(nb.id) !== undefined);
    a.close();
    editors.splice(editors.indexOf(a), 1);
    // NOTEBOOK_IDLE_MS is 2 s in the tests.
    await waitFor(() => hub.get(nb.id) === undefined, 10_000);
    const b = await editor(member, nb.id);
    expect(jsonOf(b.doc)).toContain("kept while unloaded");
  });

  it("keeps accepted updates through a database that refuses writes, and stores them once it takes them again", async () => {
    const nb = await notebookOf(owner.client, room.id);
    const a = await editor(owner, nb.id);
    const b = await editor(member, nb.id);
    const db = server.deps.dbh.db;
    const stored = async () => {
      const doc = new Y.Doc();
      for (const u of (await server.deps.notebooks.store.load(nb.id)).updates) Y.applyUpdate(doc, u);
      return jsonOf(doc);
    };
    // The database refuses every new row of the log, as a full disk or a failed-over primary would.
    await db.execute(sql`alter table notebook_updates add constraint refuse_all check (false) not valid`);
    try {
      insertCell(a.doc, 0, { type: "code", source: "written while the database refused" });
      // Clients still see each other's edits at once.
      await waitFor(() => jsonOf(b.doc).includes("written while the database refused"));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await stored()).not.toContain("written while the database refused");
    } finally {
      await db.execute(sql`alter table notebook_updates drop constraint refuse_all`);
    }
    // The writer's retries get through: the update is stored, nothing lost.
    await waitFor(async () => (await stored()).includes("written while the database refused"), 10_000);
  });

  it("gives a learner's personal room a notebook of its own that nobody else can open", async () => {
    const personal = (await member.client.post<Room>("/api/v1/rooms/personal")).body;
    const mine = await notebookOf(member.client, personal.id);
    expect(mine).toMatchObject({ roomId: personal.id, writable: true });
    expect((await owner.client.get(`/api/v1/rooms/${personal.id}/notebook`)).status).toBe(404);
    const e = await editor(member, mine.id);
    insertCell(e.doc, 0, { type: "code", source: "mine = True" });
    const again = await editor(member, mine.id);
    expect(jsonOf(again.doc)).toContain("mine = True");
  });

  it("lets an observer read but drops its edits and tells it so", async () => {
    const nb = await notebookOf(observer.client, room.id);
    expect(nb).toMatchObject({ writable: false, canManage: false });
    const writer = await editor(owner, nb.id);
    const reader = await editor(observer, nb.id);
    await waitFor(() => reader.denied.includes(READ_ONLY_REASON));
    insertCell(reader.doc, 0, { type: "markdown", source: "observer was here" });
    insertCell(writer.doc, 0, { type: "markdown", source: "owner was here" });
    await waitFor(() => jsonOf(reader.doc).includes("owner was here"));
    // A fresh client sees the owner's cell, never the observer's.
    const fresh = await editor(member, nb.id);
    expect(jsonOf(fresh.doc)).toContain("owner was here");
    expect(jsonOf(fresh.doc)).not.toContain("observer was here");
  });
});
