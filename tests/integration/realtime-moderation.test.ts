import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Ack, RoomJoinResult } from "../../shared/realtime.ts";
import type { AuditPage } from "../../shared/schemas/admin.ts";
import type { AccessToken } from "../../shared/schemas/auth.ts";
import type { ChatMessage, Room } from "../../shared/schemas/rooms.ts";
import { startCluster, type TestCluster } from "../helpers/cluster.ts";
import { registerUser, type TestUser, waitFor } from "../helpers/factories.ts";
import type { TestServer } from "../helpers/server.ts";
import { ChatLog, type ClientSocket, connect, PresenceView, request } from "../helpers/sockets.ts";

// Owner on node A, a moderator on B, members on B and C: every effect must reach every node.
let cluster: TestCluster;
let owner: TestUser;
let mod: TestUser;
const open: ClientSocket[] = [];
const node = (i: number) => cluster.nodes[i] as TestServer;

async function socketOn(i: number, u: TestUser): Promise<ClientSocket> {
  const token = (await u.client.post<AccessToken>("/api/v1/auth/token")).body.token;
  const socket = await connect(node(i).url, { token });
  open.push(socket);
  return socket;
}
const join = (socket: ClientSocket, roomId: string) => request<RoomJoinResult>(socket, "room:join", { roomId });
const send = (socket: ClientSocket, roomId: string, body: string) =>
  request<ChatMessage>(socket, "chat:send", { roomId, body });
const code = (reply: Ack<unknown>) => (reply.ok ? "ok" : reply.error.code);

/** A fresh room with the owner, a moderator and `n` members (each a fresh user). */
async function freshRoom(n: number): Promise<{ room: Room; members: TestUser[] }> {
  const created = await owner.client.post<Room>("/api/v1/rooms", { name: "Moderated", topic: "", language: "en" });
  const room = created.body;
  await mod.client.post("/api/v1/rooms/join", { code: room.inviteCode });
  await owner.client.patch(`/api/v1/rooms/${room.id}/members/${mod.me.user.id}`, { role: "moderator" });
  const members: TestUser[] = [];
  for (let i = 0; i < n; i++) {
    const u = await registerUser(node(i % 3).url, `Member ${i}`);
    await u.client.post("/api/v1/rooms/join", { code: room.inviteCode });
    members.push(u);
  }
  return { room, members };
}

beforeAll(async () => {
  cluster = await startCluster(3);
  owner = await registerUser(node(0).url, "Owner");
  mod = await registerUser(node(1).url, "Moderator");
});
afterEach(() => {
  for (const socket of open.splice(0)) socket.close();
});
afterAll(() => cluster?.close());

describe("messages: edit, delete, tombstones", () => {
  it("lets authors edit and delete their own messages, moderators delete any (audited)", async () => {
    const { room, members } = await freshRoom(2);
    const [a, b] = members as [TestUser, TestUser];
    const sa = await socketOn(1, a);
    const sb = await socketOn(2, b);
    const sm = await socketOn(0, mod);
    for (const s of [sa, sb, sm]) await join(s, room.id);
    const edited: ChatMessage[] = [];
    const deleted: ChatMessage[] = [];
    sb.on("chat:edited", (m) => edited.push(m));
    sb.on("chat:deleted", (m) => deleted.push(m));
    const sent = await send(sa, room.id, "typo");
    if (!sent.ok) throw new Error(sent.error.code);
    const id = sent.data.id;
    expect(code(await request(sb, "chat:edit", { roomId: room.id, messageId: id, body: "hack" }))).toBe("forbidden");
    expect(code(await request(sa, "chat:edit", { roomId: room.id, messageId: id, body: "fixed" }))).toBe("ok");
    await waitFor(() => edited.some((m) => m.id === id && m.body === "fixed" && m.editedAt));
    expect(code(await request(sb, "chat:delete", { roomId: room.id, messageId: id }))).toBe("forbidden");
    expect(code(await request(sm, "chat:delete", { roomId: room.id, messageId: id }))).toBe("ok");
    await waitFor(() => deleted.some((m) => m.id === id && m.body === "" && m.deletedAt));
    expect(code(await request(sa, "chat:edit", { roomId: room.id, messageId: id, body: "again" }))).toBe("not_found");
    const history = await a.client.get<{ items: ChatMessage[] }>(`/api/v1/rooms/${room.id}/messages`);
    expect(history.body.items.find((m) => m.id === id)).toMatchObject({ body: "", deletedAt: expect.any(String) });
    const audit = await owner.client.get<AuditPage>("/api/v1/admin/audit?action=room.message_delete");
    expect(audit.body.items.some((e) => e.targetId === String(id) && e.actorId === mod.me.user.id)).toBe(true);
  });
});

describe("typing and hands", () => {
  it("shows typing to the others only, and hands in presence on every node", async () => {
    const { room, members } = await freshRoom(2);
    const [a, b] = members as [TestUser, TestUser];
    const sa = await socketOn(0, a);
    const sb = await socketOn(2, b);
    await join(sa, room.id);
    const view = new PresenceView(sb, room.id);
    const joinedB = await join(sb, room.id);
    if (!joinedB.ok) throw new Error(joinedB.error.code);
    view.joined(joinedB.data.presence);
    const typingSeenByA: boolean[] = [];
    const typingSeenByB: string[] = [];
    sa.on("typing:update", (t) => typingSeenByA.push(t.typing));
    sb.on("typing:update", (t) => typingSeenByB.push(t.userId));
    expect(code(await request(sa, "typing:set", { roomId: room.id, typing: true }))).toBe("ok");
    await waitFor(() => typingSeenByB.includes(a.me.user.id));
    expect(typingSeenByA).toEqual([]);
    expect(code(await request(sa, "hand:set", { roomId: room.id, raised: true }))).toBe("ok");
    await waitFor(() => view.users.get(a.me.user.id)?.handRaised === true);
    // A client that joins later sees the raised hand too.
    const late = await socketOn(1, owner);
    const joined = await join(late, room.id);
    expect(joined.ok && joined.data.presence.find((u) => u.userId === a.me.user.id)?.handRaised).toBe(true);
    expect(code(await request(sa, "hand:set", { roomId: room.id, raised: false }))).toBe("ok");
    await waitFor(() => view.users.get(a.me.user.id)?.handRaised === false);
  });
});

describe("moderation", () => {
  it("mutes and unmutes; members cannot (refusals audited)", async () => {
    const { room, members } = await freshRoom(2);
    const [a, b] = members as [TestUser, TestUser];
    const sa = await socketOn(2, a);
    const sb = await socketOn(1, b);
    const sm = await socketOn(0, mod);
    for (const s of [sa, sb, sm]) await join(s, room.id);
    const updates: boolean[] = [];
    sa.on("member:updated", (m) => {
      if (m.userId === a.me.user.id) updates.push(m.muted);
    });
    // Sending first caches a's standing on node C; the mute made on node A must reach it well within the
    // cache's 5 s lifetime (the window here is 1.5 s), or the test fails.
    expect(code(await send(sa, room.id, "before the mute"))).toBe("ok");
    expect(code(await request(sb, "mod:mute", { roomId: room.id, userId: a.me.user.id, muted: true }))).toBe(
      "forbidden",
    );
    expect(code(await request(sm, "mod:mute", { roomId: room.id, userId: a.me.user.id, muted: true }))).toBe("ok");
    await waitFor(() => updates.includes(true));
    await waitFor(async () => code(await send(sa, room.id, "hello?")) === "muted", 1500);
    expect(code(await request(sm, "mod:mute", { roomId: room.id, userId: owner.me.user.id, muted: true }))).toBe(
      "forbidden",
    );
    expect(code(await request(sm, "mod:mute", { roomId: room.id, userId: a.me.user.id, muted: false }))).toBe("ok");
    expect(code(await send(sa, room.id, "hello!"))).toBe("ok");
    const denied = await owner.client.get<AuditPage>(
      `/api/v1/admin/audit?action=room.member_mute&outcome=denied&actorId=${b.me.user.id}`,
    );
    expect(denied.body.items).toHaveLength(1);
  });

  it("locks the chat for members, not for moderators", async () => {
    const { room, members } = await freshRoom(1);
    const sa = await socketOn(1, members[0] as TestUser);
    const sm = await socketOn(2, mod);
    for (const s of [sa, sm]) await join(s, room.id);
    const states: boolean[] = [];
    sa.on("room:updated", (r) => states.push(r.chatLocked));
    expect(code(await request(sm, "mod:lock", { roomId: room.id, locked: true }))).toBe("ok");
    await waitFor(() => states.includes(true));
    expect(code(await send(sa, room.id, "x"))).toBe("chat_locked");
    expect(code(await send(sm, room.id, "announcement"))).toBe("ok");
    expect(code(await request(sm, "mod:lock", { roomId: room.id, locked: false }))).toBe("ok");
    expect(code(await send(sa, room.id, "x"))).toBe("ok");
  });

  it("a ban on node A removes the user's sockets on B and C at once, and keeps them out", async () => {
    const { room, members } = await freshRoom(2);
    const [victim, witness] = members as [TestUser, TestUser];
    const onB = await socketOn(1, victim);
    const onC = await socketOn(2, victim);
    const sw = await socketOn(2, witness);
    const so = await socketOn(0, owner);
    for (const s of [onB, onC, sw, so]) await join(s, room.id);
    // Raw arrival, no ordering rule: the victim's sockets must receive nothing at all after the ban.
    const victimGot: string[] = [];
    for (const s of [onB, onC]) s.on("chat:message", (m) => victimGot.push(m.body));
    const witnessLog = new ChatLog().follow(sw, room.id);
    const removed: string[] = [];
    for (const s of [onB, onC]) s.on("room:removed", (r) => removed.push(r.reason));
    expect(code(await request(so, "mod:remove", { roomId: room.id, userId: victim.me.user.id, ban: true }))).toBe("ok");
    await waitFor(() => removed.length === 2);
    expect(removed).toEqual(["banned", "banned"]);
    expect(code(await send(sw, room.id, "after the ban"))).toBe("ok");
    expect(code(await send(so, room.id, "marker"))).toBe("ok");
    await waitFor(() => witnessLog.bodies().includes("marker"));
    expect(witnessLog.bodies()).toEqual(["after the ban", "marker"]);
    expect(victimGot).toEqual([]);
    expect(code(await join(onB, room.id))).toBe("not_found");
    const back = await victim.client.post<{ code: string }>("/api/v1/rooms/join", { code: room.inviteCode });
    expect(back.status).toBe(403);
  });

  it("a removal through the HTTP API also takes the sockets out; the user may come back", async () => {
    const { room, members } = await freshRoom(1);
    const u = members[0] as TestUser;
    const s = await socketOn(2, u);
    await join(s, room.id);
    const removed = new Promise((resolve) => s.once("room:removed", resolve));
    expect((await owner.client.delete(`/api/v1/rooms/${room.id}/members/${u.me.user.id}`)).status).toBe(204);
    expect(await removed).toEqual({ roomId: room.id, reason: "removed" });
    expect((await u.client.post("/api/v1/rooms/join", { code: room.inviteCode })).status).toBe(200);
    expect(code(await join(s, room.id))).toBe("ok");
  });

  it("ending the session sends everyone out and makes the room read-only until reopened", async () => {
    const { room, members } = await freshRoom(2);
    const sockets = await Promise.all(members.map((u, i) => socketOn(i + 1, u)));
    const sm = await socketOn(0, mod);
    for (const s of [...sockets, sm]) await join(s, room.id);
    const reasons: string[] = [];
    for (const s of sockets) s.on("room:removed", (r) => reasons.push(r.reason));
    expect(code(await request(sockets[0] as ClientSocket, "mod:end", { roomId: room.id }))).toBe("forbidden");
    expect(code(await request(sm, "mod:end", { roomId: room.id }))).toBe("ok");
    await waitFor(() => reasons.length === 2);
    expect(reasons).toEqual(["ended", "ended"]);
    const rejoined = await join(sockets[0] as ClientSocket, room.id);
    expect(rejoined.ok && rejoined.data.room.endedAt).toBeTruthy();
    expect(code(await send(sockets[0] as ClientSocket, room.id, "still here?"))).toBe("room_closed");
    expect(code(await send(sm, room.id, "even moderators read only"))).toBe("room_closed");
    expect(code(await request(sm, "mod:reopen", { roomId: room.id }))).toBe("ok");
    expect(code(await send(sockets[0] as ClientSocket, room.id, "back"))).toBe("ok");
    const audit = await owner.client.get<AuditPage>("/api/v1/admin/audit?action=room.session_end");
    expect(audit.body.items.some((e) => e.targetId === room.id && e.outcome === "success")).toBe(true);
  });
});
