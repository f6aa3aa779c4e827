import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { answers } from "../../db/schema.ts";
import type { Ack, ClientToServerEvents } from "../../shared/realtime.ts";
import type { AccessToken } from "../../shared/schemas/auth.ts";
import type { ChatMessage, Room } from "../../shared/schemas/rooms.ts";
import { testConfig } from "../helpers/config.ts";
import { registerUser, type TestUser } from "../helpers/factories.ts";
import { startServer, type TestServer } from "../helpers/server.ts";
import { type ClientSocket, connect, request } from "../helpers/sockets.ts";

/**
 * Who may send which event, by room role, as docs/PROTOCOL.md states it: `ok`, or the error code expected.
 * Every client event must be in this table (a new event fails the first test until it is added).
 */
type Caller = "owner" | "moderator" | "member" | "observer" | "stranger";
type Expect = Record<Caller, "ok" | "forbidden" | "not_found">;
const MANAGERS: Expect = {
  owner: "ok",
  moderator: "ok",
  member: "forbidden",
  observer: "forbidden",
  stranger: "not_found",
};
const WRITERS: Expect = { owner: "ok", moderator: "ok", member: "ok", observer: "forbidden", stranger: "not_found" };
const READERS: Expect = { owner: "ok", moderator: "ok", member: "ok", observer: "ok", stranger: "not_found" };

const MATRIX: Record<keyof ClientToServerEvents, Expect> = {
  "room:join": READERS,
  "room:leave": { ...READERS, stranger: "ok" },
  "chat:send": WRITERS,
  "chat:sync": READERS,
  // editing the owner's message: only its author
  "chat:edit": {
    owner: "ok",
    moderator: "forbidden",
    member: "forbidden",
    observer: "forbidden",
    stranger: "not_found",
  },
  // deleting a plain member's message: its author is not among the callers
  "chat:delete": MANAGERS,
  "typing:set": READERS,
  "hand:set": WRITERS,
  "mod:mute": MANAGERS,
  "mod:remove": MANAGERS,
  "mod:lock": MANAGERS,
  "mod:end": MANAGERS,
  "mod:reopen": MANAGERS,
  "tutor:ask": WRITERS,
  "tutor:get": READERS,
  // cancelling someone else's question (the author's): only managers
  "tutor:cancel": MANAGERS,
  "tutor:review": MANAGERS,
};
const CALLERS: Caller[] = ["owner", "moderator", "member", "observer", "stranger"];

let s: TestServer;
let room: Room;
const users = {} as Record<Caller | "author", TestUser>;
const sockets = {} as Record<Caller, ClientSocket>;
const extra: ClientSocket[] = [];

async function socketFor(u: TestUser): Promise<ClientSocket> {
  return connect(s.url, { token: (await u.client.post<AccessToken>("/api/v1/auth/token")).body.token });
}
const ok = (reply: Ack<unknown>) => (reply.ok ? "ok" : reply.error.code);

/** A fresh member to act on (mute, remove), so that each call has a valid target. */
async function target(): Promise<TestUser> {
  const u = await registerUser(s.url, "Target");
  await u.client.post("/api/v1/rooms/join", { code: room.inviteCode });
  return u;
}

/** The payload of each event for one call, with whatever it needs created first. */
async function payloadFor(event: keyof ClientToServerEvents): Promise<object> {
  const roomId = room.id;
  switch (event) {
    case "chat:send":
      return { roomId, body: "hello" };
    case "chat:sync":
      return { roomId, afterSeq: 0 };
    case "chat:edit": {
      const m = await s.deps.chat.send(roomId, { id: users.owner.me.user.id, displayName: "Owner" }, "owner's words");
      return { roomId, messageId: m.id, body: "edited" };
    }
    case "chat:delete": {
      const m: ChatMessage = await s.deps.chat.send(
        roomId,
        { id: users.author.me.user.id, displayName: "Author" },
        "x",
      );
      return { roomId, messageId: m.id };
    }
    case "typing:set":
      return { roomId, typing: true };
    case "hand:set":
      return { roomId, raised: true };
    case "mod:mute":
      return { roomId, userId: (await target()).me.user.id, muted: true };
    case "mod:remove":
      return { roomId, userId: (await target()).me.user.id, ban: false };
    case "mod:lock":
      return { roomId, locked: false };
    case "tutor:ask":
      return { roomId, question: "What is a list?" };
    case "tutor:get":
    case "tutor:cancel": {
      // Answers stream slowly on this server, and the first keeps the lease: this one stays queued.
      const a = await s.deps.tutor.ask(
        roomId,
        { id: users.author.me.user.id, displayName: "Author" },
        {
          roomId,
          question: "How do loops work?",
          level: "beginner",
        },
      );
      return { roomId, answerId: a.id };
    }
    case "tutor:review": {
      const [row] = await s.deps.dbh.db
        .insert(answers)
        .values({
          roomId,
          askerId: users.author.me.user.id,
          question: "held?",
          status: "held",
          review: true,
          text: "a held answer",
          kind: "concept",
          language: "en",
          finishedAt: new Date(),
        })
        .returning();
      return { roomId, answerId: row?.id, approve: true };
    }
    default:
      return { roomId };
  }
}

beforeAll(async () => {
  // The offline tutor pauses between words: questions asked here stay queued or streaming while tested.
  s = await startServer({ tutor: { ...testConfig().tutor, offlineDelayMs: 100 } });
  await s.deps.settings.update({ tutorQuestionsPerMinute: 600 });
  users.owner = await registerUser(s.url, "Owner");
  const created = await users.owner.client.post<Room>("/api/v1/rooms", { name: "Matrix", topic: "", language: "en" });
  room = created.body;
  for (const role of ["moderator", "member", "observer", "author"] as const) {
    users[role] = await registerUser(s.url, role);
    await users[role].client.post("/api/v1/rooms/join", { code: room.inviteCode });
    if (role === "moderator" || role === "observer") {
      await users.owner.client.patch(`/api/v1/rooms/${room.id}/members/${users[role].me.user.id}`, { role });
    }
  }
  users.stranger = await registerUser(s.url, "Stranger");
  for (const caller of CALLERS) sockets[caller] = await socketFor(users[caller]);
});
afterEach(async () => {
  // Every call starts from an open room, unlocked, with everyone in it who may be.
  await s.deps.rooms.setEnded(room.id, users.owner.me.user.id, false);
  await s.deps.rooms.setChatLocked(room.id, users.owner.me.user.id, false);
  for (const c of extra.splice(0)) c.close();
  for (const a of await s.deps.tutor.live(room.id, true)) {
    // (one may end on its own meanwhile: `conflict`)
    if (a.status === "queued" || a.status === "streaming")
      await s.deps.tutor.cancel(room.id, users.owner.me.user.id, a.id).catch(() => {});
  }
});
afterAll(async () => {
  for (const c of Object.values(sockets)) c.close();
  await s.close();
});

describe("socket authorisation matrix", () => {
  it("covers every client event", () => {
    const events: (keyof ClientToServerEvents)[] = Object.keys(MATRIX) as (keyof ClientToServerEvents)[];
    expect(events.length).toBeGreaterThanOrEqual(12);
  });

  for (const [event, expected] of Object.entries(MATRIX) as [keyof ClientToServerEvents, Expect][]) {
    it(`${event}: ${CALLERS.map((c) => `${c}=${expected[c]}`).join(", ")}`, async () => {
      for (const caller of CALLERS) {
        const socket = sockets[caller];
        if (caller !== "stranger") await request(socket, "room:join", { roomId: room.id });
        const reply = await request(socket, event, await payloadFor(event));
        expect(`${caller}: ${ok(reply)}`).toBe(`${caller}: ${expected[caller]}`);
        await s.deps.rooms.setEnded(room.id, users.owner.me.user.id, false);
      }
    });
  }
});
