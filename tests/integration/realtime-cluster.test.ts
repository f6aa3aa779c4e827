import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { RoomJoinResult } from "../../shared/realtime.ts";
import type { AccessToken } from "../../shared/schemas/auth.ts";
import type { ChatMessage, Room } from "../../shared/schemas/rooms.ts";
import { startCluster, type TestCluster } from "../helpers/cluster.ts";
import { registerUser, type TestUser, waitFor } from "../helpers/factories.ts";
import type { TestServer } from "../helpers/server.ts";
import { ChatLog, type ClientSocket, connect, joinWithLog, PresenceView, request } from "../helpers/sockets.ts";

let cluster: TestCluster;
let room: Room;
let users: TestUser[];
const open: ClientSocket[] = [];

async function socketOn(node: TestServer, u: TestUser): Promise<ClientSocket> {
  const token = (await u.client.post<AccessToken>("/api/v1/auth/token")).body.token;
  const socket = await connect(node.url, { token });
  open.push(socket);
  return socket;
}
const join = (socket: ClientSocket, payload: object) => request<RoomJoinResult>(socket, "room:join", payload);
const send = (socket: ClientSocket, body: string) =>
  request<ChatMessage>(socket, "chat:send", { roomId: room.id, body });
const node = (i: number) => cluster.nodes[i] as TestServer;

beforeAll(async () => {
  cluster = await startCluster(3);
  // Accounts are made on different nodes: they share one database.
  users = [];
  for (let i = 0; i < 3; i++) users.push(await registerUser(node(i).url, `User ${i}`));
  const owner = users[0] as TestUser;
  room = await node(0).deps.rooms.create(
    { id: owner.me.user.id, role: owner.me.user.role },
    { name: "Cluster", topic: "", language: "fr" },
  );
  for (const u of users.slice(1)) await node(1).deps.rooms.joinByCode(u.me.user.id, room.inviteCode as string);
});
afterEach(() => {
  for (const socket of open.splice(0)) socket.close();
});
afterAll(() => cluster?.close());

describe("a room spread over three nodes", () => {
  it("delivers chat sent on A to members on B and C, in order", async () => {
    const sockets = await Promise.all(users.map((u, i) => socketOn(node(i), u)));
    const logs = sockets.map(() => new ChatLog());
    for (const [i, socket] of sockets.entries())
      expect((await joinWithLog(socket, room.id, logs[i] as ChatLog)).ok).toBe(true);
    const bodies = Array.from({ length: 20 }, (_, i) => `m${i}`);
    for (const body of bodies) expect((await send(sockets[0] as ClientSocket, body)).ok).toBe(true);
    await waitFor(() => logs.every((log) => log.messages.length === bodies.length));
    for (const log of logs) expect(log.bodies()).toEqual(bodies);
  });

  it("orders messages sent at once through different nodes the same way for everyone, with no gap", async () => {
    const sockets = await Promise.all(users.map((u, i) => socketOn(node(i), u)));
    const logs = sockets.map(() => new ChatLog());
    for (const [i, socket] of sockets.entries()) await joinWithLog(socket, room.id, logs[i] as ChatLog);
    // Every node sends 30 messages as fast as it can: each delivers its own first, the others' through Redis.
    const acks = await Promise.all(
      sockets.map((socket, i) => Promise.all(Array.from({ length: 30 }, (_, k) => send(socket, `n${i}-${k}`)))),
    );
    const seqs = acks.flat().map((a) => (a.ok ? a.data.seq : -1));
    expect(seqs.includes(-1)).toBe(false);
    expect(new Set(seqs).size).toBe(90);
    await waitFor(() => logs.every((log) => log.messages.length === 90 && log.waiting === 0));
    const first = (logs[0] as ChatLog).messages.map((m) => m.seq);
    expect(first).toEqual([...first].sort((x, y) => x - y));
    expect((first.at(-1) ?? 0) - (first[0] ?? 0)).toBe(89);
    for (const log of logs) expect(log.messages.map((m) => m.seq)).toEqual(first);
  });

  it("shows the same presence on every node", async () => {
    const sockets = await Promise.all(users.map((u, i) => socketOn(node(i), u)));
    const views = sockets.map((socket) => new PresenceView(socket, room.id));
    for (const [i, socket] of sockets.entries()) {
      const ack = await join(socket, { roomId: room.id });
      if (!ack.ok) throw new Error(ack.error.code);
      (views[i] as PresenceView).joined(ack.data.presence);
    }
    const everyone = users.map((u) => u.me.user.id).sort();
    await waitFor(() => views.every((v) => JSON.stringify(v.ids()) === JSON.stringify(everyone)));
    // The last joiner saw the others in its ack; the first saw them arrive one by one.
    expect(views[0]?.users.get(users[2]?.me.user.id as string)).toMatchObject({ displayName: expect.any(String) });
    (sockets[2] as ClientSocket).close();
    const two = everyone.filter((id) => id !== users[2]?.me.user.id);
    await waitFor(() => views.slice(0, 2).every((v) => JSON.stringify(v.ids()) === JSON.stringify(two)));
  });

  it("keeps a user present while one of their connections is still in the room, on another node", async () => {
    const [a, b] = [users[0] as TestUser, users[1] as TestUser];
    const watcher = await socketOn(node(0), a);
    const view = new PresenceView(watcher, room.id);
    const ack = await join(watcher, { roomId: room.id });
    if (!ack.ok) throw new Error(ack.error.code);
    view.joined(ack.data.presence);
    const tab1 = await socketOn(node(1), b);
    const tab2 = await socketOn(node(2), b);
    await join(tab1, { roomId: room.id });
    await join(tab2, { roomId: room.id });
    await waitFor(() => view.ids().includes(b.me.user.id));
    let left = 0;
    watcher.on("presence:left", (p) => {
      if (p.userId === b.me.user.id) left++;
    });
    tab1.close();
    // Give a wrong "left" time to arrive through the other nodes before checking it did not.
    await waitFor(async () => (await join(watcher, { roomId: room.id })).ok);
    expect(view.ids()).toContain(b.me.user.id);
    expect(left).toBe(0);
    tab2.close();
    await waitFor(() => !view.ids().includes(b.me.user.id));
    expect(left).toBeGreaterThanOrEqual(1);
  });

  it("catches a client up after it reconnects to a different node", async () => {
    const [a, b] = [users[1] as TestUser, users[2] as TestUser];
    const onB = await socketOn(node(1), a);
    const log = new ChatLog();
    await joinWithLog(onB, room.id, log);
    const sender = await socketOn(node(2), b);
    await join(sender, { roomId: room.id });
    expect((await send(sender, "before")).ok).toBe(true);
    await waitFor(() => log.bodies().includes("before"));
    onB.close();
    for (const body of ["gap1", "gap2", "gap3"]) expect((await send(sender, body)).ok).toBe(true);
    const onA = await socketOn(node(0), a);
    const rejoined = await joinWithLog(onA, room.id, log, true);
    if (!rejoined.ok) throw new Error(rejoined.error.code);
    expect((await send(sender, "after")).ok).toBe(true);
    await waitFor(() => log.bodies().includes("after"));
    const tail = log.bodies().slice(log.bodies().indexOf("before"));
    expect(tail).toEqual(["before", "gap1", "gap2", "gap3", "after"]);
  });

  it("a node stopping gracefully sends its clients elsewhere without losing a message", async () => {
    const extra = await cluster.addNode();
    const [a, b] = [users[1] as TestUser, users[0] as TestUser];
    const token = (await a.client.post<AccessToken>("/api/v1/auth/token")).body.token;
    const leaving = await connect(extra.url, { token });
    open.push(leaving);
    const log = new ChatLog();
    await joinWithLog(leaving, room.id, log);
    let told = false;
    leaving.on("server:shutdown", () => {
      told = true;
    });
    const sender = await socketOn(node(0), b);
    await join(sender, { roomId: room.id });
    await send(sender, "s1");
    await waitFor(() => log.bodies().includes("s1"));
    const disconnected = new Promise((resolve) => leaving.once("disconnect", resolve));
    await extra.close(1000);
    await disconnected;
    expect(told).toBe(true);
    await send(sender, "s2");
    const elsewhere = await connect(node(2).url, { token });
    open.push(elsewhere);
    const rejoined = await joinWithLog(elsewhere, room.id, log, true);
    if (!rejoined.ok) throw new Error(rejoined.error.code);
    expect(log.bodies().slice(log.bodies().indexOf("s1"))).toEqual(["s1", "s2"]);
  });

  it("disconnects a disabled user's sockets on every node", async () => {
    const victim = await registerUser(node(1).url, "Victim");
    const sockets = await Promise.all([0, 1, 2].map((i) => socketOn(node(i), victim)));
    const admin = users[0] as TestUser;
    expect((await admin.client.patch(`/api/v1/admin/users/${victim.me.user.id}`, { disabled: true })).status).toBe(200);
    await waitFor(() => sockets.every((socket) => !socket.connected), 3000);
  });
});
