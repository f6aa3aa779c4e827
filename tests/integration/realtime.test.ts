import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Ack, RoomJoinResult } from "../../shared/realtime.ts";
import type { AccessToken } from "../../shared/schemas/auth.ts";
import type { ChatMessage, Room } from "../../shared/schemas/rooms.ts";
import { registerUser, type TestUser, waitFor } from "../helpers/factories.ts";
import { startServer, type TestServer } from "../helpers/server.ts";
import { ChatLog, type ClientSocket, connect, joinWithLog, PresenceView, request } from "../helpers/sockets.ts";

let s: TestServer;
let owner: TestUser;
let room: Room;
const open: ClientSocket[] = [];

async function tokenOf(u: TestUser): Promise<string> {
  return (await u.client.post<AccessToken>("/api/v1/auth/token")).body.token;
}
async function socketOf(u: TestUser): Promise<ClientSocket> {
  const socket = await connect(s.url, { token: await tokenOf(u) });
  open.push(socket);
  return socket;
}
async function member(role: "member" | "observer" = "member"): Promise<TestUser> {
  const u = await registerUser(s.url);
  await s.deps.rooms.joinByCode(u.me.user.id, room.inviteCode as string);
  if (role !== "member") await s.deps.rooms.setRole(room.id, owner.me.user.id, u.me.user.id, role);
  return u;
}
const join = (socket: ClientSocket, payload: object) => request<RoomJoinResult>(socket, "room:join", payload);
const send = (socket: ClientSocket, body: string, roomId = room.id) =>
  request<ChatMessage>(socket, "chat:send", { roomId, body });

beforeAll(async () => {
  s = await startServer();
  owner = await registerUser(s.url, "Owner");
  room = await s.deps.rooms.create(
    { id: owner.me.user.id, role: owner.me.user.role },
    { name: "Loops", topic: "", language: "en" },
  );
});
afterEach(() => {
  for (const socket of open.splice(0)) socket.close();
});
afterAll(() => s.close());

describe("handshake", () => {
  it("refuses a connection without credentials, with a stable code", async () => {
    const err = await connect(s.url).catch((e: { data?: { code?: string } }) => e);
    expect((err as { data?: { code?: string } }).data?.code).toBe("unauthenticated");
  });

  it("refuses a bad token and a dead cookie", async () => {
    const bad = await connect(s.url, { token: "nope" }).catch((e) => e);
    expect((bad as { data?: { code?: string } }).data?.code).toBe("session_expired");
    const dead = await connect(s.url, {
      cookie: "dp_session=aaaaaaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    }).catch((e) => e);
    expect((dead as { data?: { code?: string } }).data?.code).toBe("session_expired");
  });

  it("accepts the session cookie from our own page, and refuses it from a foreign origin", async () => {
    const u = await registerUser(s.url);
    const ok = await connect(s.url, { cookie: u.client.cookie, origin: s.url });
    open.push(ok);
    expect(ok.connected).toBe(true);
    const foreign = await connect(s.url, { cookie: u.client.cookie, origin: "https://evil.example" }).catch((e) => e);
    expect(foreign).toBeInstanceOf(Error);
  });

  it("accepts an access token", async () => {
    expect((await socketOf(owner)).connected).toBe(true);
  });
});

describe("rooms and chat on one node", () => {
  it("lets members join and see who is there; refuses non-members", async () => {
    const a = await member();
    const stranger = await registerUser(s.url);
    const sa = await socketOf(a);
    const joined = await join(sa, { roomId: room.id });
    expect(joined.ok).toBe(true);
    if (!joined.ok) return;
    expect(joined.data.room.myRole).toBe("member");
    expect(joined.data.room.inviteCode).toBeNull();
    expect(joined.data.presence.map((p) => p.userId)).toContain(a.me.user.id);
    const refused = await join(await socketOf(stranger), { roomId: room.id });
    expect(refused).toMatchObject({ ok: false, error: { code: "not_found" } });
  });

  it("persists a message, then delivers it to everyone in the room with a server id and time", async () => {
    const a = await member();
    const b = await member();
    const [sa, sb] = [await socketOf(a), await socketOf(b)];
    await join(sa, { roomId: room.id });
    const logB = new ChatLog();
    await joinWithLog(sb, room.id, logB);
    // The ack to A and the broadcast to B travel on different connections: either may arrive first.
    const seenByB = logB.lastSeq;
    const sent = await send(sa, "  for i in range(3): print(i)  ");
    expect(sent.ok).toBe(true);
    if (!sent.ok) return;
    expect(sent.data.body).toBe("for i in range(3): print(i)");
    expect(sent.data.seq).toBe(seenByB + 1);
    expect(sent.data.authorId).toBe(a.me.user.id);
    await waitFor(() => logB.messages.length === 1);
    expect(logB.messages[0]).toEqual(sent.data);
    const history = await a.client.get<{ items: ChatMessage[] }>(`/api/v1/rooms/${room.id}/messages?limit=1`);
    expect(history.status).toBe(200);
    expect(history.body.items[0]).toEqual(sent.data);
  });

  it("refuses observers, invalid payloads and oversized messages with error acks", async () => {
    const o = await member("observer");
    const so = await socketOf(o);
    expect(await send(so, "hello")).toMatchObject({ ok: false, error: { code: "forbidden" } });
    const sa = await socketOf(await member());
    const cases: unknown[] = [
      null,
      42,
      "x",
      {},
      { roomId: "not-a-uuid", body: "x" },
      { roomId: room.id, body: "" },
      { roomId: room.id, body: "x".repeat(2001) },
      { roomId: room.id, body: "x", extra: 1 },
    ];
    for (const payload of cases) {
      const reply = (await request(sa, "chat:send", payload)) as Ack<unknown>;
      expect(reply).toMatchObject({ ok: false, error: { code: "invalid_input" } });
    }
    // An event without an ack function does not break the socket.
    (sa.emit as unknown as (event: string, payload: unknown) => void)("chat:send", { roomId: room.id, body: "no ack" });
    expect(await send(sa, "still alive")).toMatchObject({ ok: true });
  });

  it("gives a rejoining client the messages it missed, in order, each once", async () => {
    const a = await member();
    const b = await member();
    const sa = await socketOf(a);
    const log = new ChatLog();
    await joinWithLog(sa, room.id, log);
    const sb = await socketOf(b);
    expect((await send(sb, "m1")).ok).toBe(true);
    await waitFor(() => log.messages.length === 1);
    sa.close();
    for (const body of ["m2", "m3", "m4"]) expect((await send(sb, body)).ok).toBe(true);
    const again = await socketOf(a);
    const rejoined = await joinWithLog(again, room.id, log, true);
    if (!rejoined.ok) throw new Error(rejoined.error.code);
    expect(rejoined.data.missed.map((m) => m.body)).toEqual(["m2", "m3", "m4"]);
    expect((await send(sb, "m5")).ok).toBe(true);
    await waitFor(() => log.messages.length === 5);
    expect(log.bodies()).toEqual(["m1", "m2", "m3", "m4", "m5"]);
  });

  it("updates presence when someone leaves or disconnects", async () => {
    const a = await member();
    const b = await member();
    const sa = await socketOf(a);
    const sb = await socketOf(b);
    const view = new PresenceView(sa, room.id);
    const ack = await join(sa, { roomId: room.id });
    if (!ack.ok) throw new Error(ack.error.code);
    view.joined(ack.data.presence);
    await join(sb, { roomId: room.id });
    await waitFor(() => view.ids().includes(b.me.user.id));
    expect(await request(sb, "room:leave", { roomId: room.id })).toMatchObject({ ok: true });
    await waitFor(() => !view.ids().includes(b.me.user.id));
    // Leaving twice says nothing more; a second leave of a room one is not in changes no one's presence.
    expect(await request(sb, "room:leave", { roomId: room.id })).toMatchObject({ ok: true });
    await join(sb, { roomId: room.id });
    await waitFor(() => view.ids().includes(b.me.user.id));
    sb.close();
    await waitFor(() => !view.ids().includes(b.me.user.id));
    expect(view.ids()).toContain(a.me.user.id);
  });
});

describe("revocation", () => {
  it("disconnects the sockets of a session that logs out, and only those", async () => {
    const u = await registerUser(s.url);
    const other = await registerUser(s.url);
    const mine = await connect(s.url, { cookie: u.client.cookie, origin: s.url });
    const theirs = await socketOf(other);
    open.push(mine);
    let told = false;
    mine.on("auth:revoked", () => {
      told = true;
    });
    const gone = new Promise<string>((resolve) => mine.once("disconnect", resolve));
    await u.client.post("/api/v1/auth/logout");
    expect(await gone).toBe("io server disconnect");
    expect(told).toBe(true);
    expect(theirs.connected).toBe(true);
  });

  it("disconnects every socket of a user who is disabled", async () => {
    const u = await registerUser(s.url);
    const [one, two] = [await socketOf(u), await socketOf(u)];
    await owner.client.patch(`/api/v1/admin/users/${u.me.user.id}`, { disabled: true });
    await waitFor(() => !one.connected && !two.connected);
  });

  it("keeps the sockets of a user whose role changes", async () => {
    const u = await registerUser(s.url);
    const socket = await socketOf(u);
    await owner.client.patch(`/api/v1/admin/users/${u.me.user.id}`, { role: "teacher" });
    // The re-check reads the database; a round trip later the socket must still be there.
    expect(await request(socket, "room:leave", { roomId: room.id })).toMatchObject({ ok: true });
    expect(socket.connected).toBe(true);
  });
});

describe("limits", () => {
  it("answers rate_limited past the per-user event budget, with a retry delay", async () => {
    const limited = await startServer({
      rateLimits: { ...s.config.rateLimits, socketEventsPerUser: 5, chatPerRoom: 1000 },
    });
    try {
      const u = await registerUser(limited.url);
      const token = (await u.client.post<AccessToken>("/api/v1/auth/token")).body.token;
      const socket = await connect(limited.url, { token });
      open.push(socket);
      const replies = [];
      for (let i = 0; i < 7; i++) replies.push(await request(socket, "room:leave", { roomId: room.id }));
      expect(replies.slice(0, 5).every((r) => r.ok)).toBe(true);
      expect(replies[5]).toMatchObject({ ok: false, error: { code: "rate_limited" } });
      const last = replies[6];
      expect(last && !last.ok && (last.error.retryAfter ?? 0) > 0).toBe(true);
      expect(socket.connected).toBe(true);
    } finally {
      await limited.close();
    }
  });

  it("caps the chat rate of a room, whoever sends", async () => {
    const limited = await startServer({ rateLimits: { ...s.config.rateLimits, chatPerRoom: 3 } });
    try {
      const a = await registerUser(limited.url);
      const b = await registerUser(limited.url);
      const r = await limited.deps.rooms.create(
        { id: a.me.user.id, role: a.me.user.role },
        { name: "R", topic: "", language: "en" },
      );
      await limited.deps.rooms.joinByCode(b.me.user.id, r.inviteCode as string);
      const sockets = [];
      for (const u of [a, b]) {
        const token = (await u.client.post<AccessToken>("/api/v1/auth/token")).body.token;
        sockets.push(await connect(limited.url, { token }));
      }
      open.push(...sockets);
      const codes = [];
      for (let i = 0; i < 4; i++) {
        const reply = await send(sockets[i % 2] as ClientSocket, `m${i}`, r.id);
        codes.push(reply.ok ? "ok" : reply.error.code);
      }
      expect(codes).toEqual(["ok", "ok", "ok", "rate_limited"]);
    } finally {
      await limited.close();
    }
  });

  it("refuses to join more rooms than a connection may hold", async () => {
    const u = await registerUser(s.url);
    const socket = await socketOf(u);
    const results = [];
    for (let i = 0; i < 21; i++) {
      const r = await s.deps.rooms.create(
        { id: u.me.user.id, role: u.me.user.role },
        { name: `R${i}`, topic: "", language: "en" },
      );
      results.push(await join(socket, { roomId: r.id }));
    }
    expect(results.slice(0, 20).every((r) => r.ok)).toBe(true);
    expect(results[20]).toMatchObject({ ok: false, error: { code: "too_many_rooms" } });
  });
});
