import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RoomJoinResult } from "../../shared/realtime.ts";
import type { AccessToken } from "../../shared/schemas/auth.ts";
import type { ChatMessage, HistoryPage, Room } from "../../shared/schemas/rooms.ts";
import { registerUser, type TestUser, waitFor } from "../helpers/factories.ts";
import type { Client } from "../helpers/http.ts";
import { type NodeProcess, type ProcessCluster, startProcessCluster } from "../helpers/node-process.ts";
import { ChatLog, type ClientSocket, connect, PresenceView, request } from "../helpers/sockets.ts";

/**
 * Nodes that really die: three `server/main.ts` processes on one Redis and one PostgreSQL, and node B
 * SIGKILLed while the room is chatting. No graceful shutdown, no `server:shutdown`: its clients just lose
 * their connection, and the test plays the load balancer, sending those that come back to a live node.
 */

let cluster: ProcessCluster;
let room: Room;
const members = new Map<string, TestUser>();
const sockets: ClientSocket[] = [];

const nodeA = () => cluster.nodes[0] as NodeProcess;
const nodeB = () => cluster.nodes[1] as NodeProcess;
const nodeC = () => cluster.nodes[2] as NodeProcess;

/** One open socket of one user in the room, as a well-behaved client keeps it. */
interface RoomClient {
  name: string;
  user: TestUser;
  token: string;
  node: NodeProcess;
  socket: ClientSocket;
  log: ChatLog;
  /** every message id received, live or in a catch-up, in arrival order (to tell a loss from a drop) */
  received: number[];
  /** every presence seen (sorted user ids), with when */
  presence: { at: number; ids: string[] }[];
  /** set while the socket is in the room (joined, catch-up merged) */
  ready: boolean;
  /** joined once already: later joins resume after `log.lastSeq` */
  joined: boolean;
  /** rejoins made after a lost connection, and how they went */
  moves: Promise<void>[];
}

const join = (socket: ClientSocket, payload: object) => request<RoomJoinResult>(socket, "room:join", payload);
const same = (a: string[], b: string[]) => JSON.stringify(a) === JSON.stringify(b);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const userId = (name: string) => (members.get(name) as TestUser).me.user.id;

async function tokenFor(u: TestUser): Promise<string> {
  const res = await u.client.post<AccessToken>("/api/v1/auth/token");
  if (res.status !== 200) throw new Error(`token: ${res.status}`);
  return res.body.token;
}

/**
 * Connects `c` to `node` and joins the room: the first time fresh (the log starts at the room's current seq),
 * later with `lastSeq`, the log's last gap-free message. ChatLog holds messages that arrive early and drops
 * what it already has, so live messages and the ack's `missed` can be merged in any order.
 */
async function attach(c: RoomClient, node: NodeProcess): Promise<void> {
  c.ready = false;
  const socket = await connect(node.url, { token: c.token });
  sockets.push(socket);
  c.socket = socket;
  c.node = node;
  c.log.repairVia(socket, room.id);
  socket.on("chat:message", (m) => {
    if (m.roomId !== room.id) return;
    c.received.push(m.id);
    if (c.socket === socket) c.log.add(m);
  });
  const view = new PresenceView(socket, room.id);
  view.onChange = (ids) => {
    if (c.socket === socket) c.presence.push({ at: Date.now(), ids });
  };
  const resume = c.joined;
  const ack = await join(socket, resume ? { roomId: room.id, lastSeq: c.log.lastSeq } : { roomId: room.id });
  if (!ack.ok) throw new Error(`${c.name}: room:join on ${node.url}: ${ack.error.code}`);
  if (ack.data.more) throw new Error(`${c.name}: catch-up too long for this test`);
  if (!resume) c.log.startAfter(ack.data.lastSeq);
  for (const m of ack.data.missed) {
    c.received.push(m.id);
    c.log.add(m);
  }
  c.joined = true;
  view.joined(ack.data.presence);
  c.ready = true;
}

async function roomClient(name: string, node: NodeProcess): Promise<RoomClient> {
  const user = members.get(name) as TestUser;
  const c: RoomClient = {
    name,
    user,
    token: await tokenFor(user),
    node,
    socket: undefined as unknown as ClientSocket,
    log: new ChatLog(),
    received: [],
    presence: [],
    ready: false,
    joined: false,
    moves: [],
  };
  await attach(c, node);
  return c;
}

/** The load balancer: when the connection drops, send the client to `fallback` and rejoin with what it has. */
function reconnectTo(c: RoomClient, fallback: NodeProcess): void {
  c.socket.once("disconnect", () => {
    c.ready = false;
    c.moves.push(attach(c, fallback));
  });
}

/** A chat:send on this client's current socket; a connection lost meanwhile ends it as not acknowledged. */
function sendNow(
  c: RoomClient,
  body: string,
): Promise<{ ok: true; message: ChatMessage } | { ok: false; why: string }> {
  const socket = c.socket;
  if (!c.ready || !socket.connected) return Promise.resolve({ ok: false, why: "not connected" });
  return new Promise((resolve) => {
    const lost = () => resolve({ ok: false, why: "disconnected" });
    socket.once("disconnect", lost);
    request<ChatMessage>(socket, "chat:send", { roomId: room.id, body }).then(
      (ack) => {
        socket.off("disconnect", lost);
        resolve(ack.ok ? { ok: true, message: ack.data } : { ok: false, why: ack.error.code });
      },
      (err: Error) => {
        socket.off("disconnect", lost);
        resolve({ ok: false, why: err.message });
      },
    );
  });
}

/** The whole stored chat of the room, oldest first, read over HTTP from a live node. */
async function history(via: Client): Promise<ChatMessage[]> {
  const all: ChatMessage[] = [];
  let before: number | null | undefined;
  do {
    const q = before ? `?limit=100&before=${before}` : "?limit=100";
    const page = await via.get<HistoryPage>(`/api/v1/rooms/${room.id}/messages${q}`);
    if (page.status !== 200) throw new Error(`history: ${page.status}`);
    all.push(...page.body.items);
    before = page.body.nextBefore;
  } while (before);
  return all.reverse();
}

beforeAll(async () => {
  const generous = "100000";
  cluster = await startProcessCluster(3, {
    RATE_LIMIT_IP: generous,
    RATE_LIMIT_USER: generous,
    RATE_LIMIT_SOCKET_USER: generous,
    RATE_LIMIT_CHAT_ROOM: generous,
  });
  // Accounts are made over the three nodes (one database); the first is the admin, who owns the room.
  const names = ["owner", "talkerC", "watchA", "watchC", "moverToA", "moverToC", "goneB1", "goneB2", "twoNodes"];
  const nodes = [nodeA(), nodeB(), nodeC()];
  for (const [i, name] of names.entries()) {
    members.set(name, await registerUser((nodes[i % 3] as NodeProcess).url, name));
  }
  const owner = members.get("owner") as TestUser;
  const created = await owner.client.post<Room>("/api/v1/rooms", { name: "Kill test", topic: "", language: "en" });
  if (created.status !== 201) throw new Error(`create room: ${created.status} ${JSON.stringify(created.body)}`);
  room = created.body;
  for (const name of names.slice(1)) {
    const res = await (members.get(name) as TestUser).client.post("/api/v1/rooms/join", { code: room.inviteCode });
    if (res.status !== 200) throw new Error(`join ${name}: ${res.status} ${JSON.stringify(res.body)}`);
  }
}, 60_000);

afterAll(async () => {
  for (const socket of sockets.splice(0)) socket.close();
  await cluster?.close();
});

describe("a node killed with SIGKILL", () => {
  // Filled by the first test, checked by the next ones.
  const clients = new Map<string, RoomClient>();
  let killedAt = 0;

  it("loses no acknowledged message for the clients that stay or come back", async () => {
    const [a, b, c] = [nodeA(), nodeB(), nodeC()];
    const placed: [string, NodeProcess][] = [
      ["owner", a],
      ["talkerC", c],
      ["watchA", a],
      ["watchC", c],
      ["moverToA", b],
      ["moverToC", b],
      ["goneB1", b],
      ["goneB2", b],
      ["twoNodes@A", a],
      ["twoNodes@B", b],
    ];
    for (const [key, node] of placed) clients.set(key, await roomClient(key.split("@")[0] as string, node));
    const get = (key: string) => clients.get(key) as RoomClient;
    const everyone = [...members.values()].map((u) => u.me.user.id).sort();
    await waitFor(() => [...clients.values()].every((cl) => same(cl.presence.at(-1)?.ids ?? [], everyone)), 10_000);

    reconnectTo(get("moverToA"), a);
    reconnectTo(get("moverToC"), c);

    // Everyone who can write keeps writing, one message at a time, until told to stop.
    const acked: ChatMessage[] = [];
    const refused: string[] = [];
    let stop = false;
    let killed = false;
    const talk = async (key: string) => {
      const cl = get(key);
      for (let n = 0; !stop; n++) {
        const sentOnB = cl.node === b;
        const r = await sendNow(cl, `${key}#${n}`);
        if (r.ok) acked.push(r.message);
        // On a live node, a send must always succeed; on B around the kill it may not.
        else if (!(sentOnB && killed) && r.why !== "not connected") refused.push(`${key}#${n}: ${r.why}`);
        await sleep(15);
      }
    };
    const talkers = ["owner", "talkerC", "moverToA", "moverToC", "goneB1", "twoNodes@B"].map(talk);
    const ackedBy = (prefix: string) => acked.filter((m) => m.body.startsWith(`${prefix}#`)).length;

    await waitFor(() => acked.length >= 60 && ackedBy("goneB1") >= 5 && ackedBy("moverToA") >= 5, 10_000);
    killed = true;
    killedAt = Date.now();
    b.kill("SIGKILL");
    expect(await b.exited).toBeNull();
    const atKill = { owner: ackedBy("owner"), talkerC: ackedBy("talkerC") };

    // The movers are rejoined elsewhere, and the chat goes on from A and C, movers included.
    await waitFor(() => get("moverToA").moves.length === 1 && get("moverToC").moves.length === 1, 5000);
    await Promise.all([...get("moverToA").moves, ...get("moverToC").moves]);
    const afterMove = { moverToA: ackedBy("moverToA"), moverToC: ackedBy("moverToC") };
    await waitFor(
      () =>
        ackedBy("owner") >= atKill.owner + 30 &&
        ackedBy("talkerC") >= atKill.talkerC + 30 &&
        ackedBy("moverToA") >= afterMove.moverToA + 10 &&
        ackedBy("moverToC") >= afterMove.moverToC + 10,
      15_000,
    );
    stop = true;
    await Promise.all(talkers);
    expect(refused).toEqual([]);
    expect(get("moverToA").node).toBe(a);
    expect(get("moverToC").node).toBe(c);

    const survivors = ["owner", "talkerC", "watchA", "watchC", "moverToA", "moverToC", "twoNodes@A"].map(get);
    const ackedIds = acked.map((m) => m.id);
    // Let the last broadcasts land; the checks below say what is missing if some never do.
    await waitFor(
      () => survivors.every((cl) => ackedIds.every((id) => cl.log.messages.some((m) => m.id === id))),
      5000,
    ).catch(() => {});

    const stored = await history((members.get("owner") as TestUser).client);
    const storedIds = new Set(stored.map((m) => m.id));
    const bodyOf = new Map(acked.map((m) => [m.id, m.body]));
    const report = survivors.map((cl) => {
      const ids = cl.log.messages.map((m) => m.id);
      const have = new Set(ids);
      const missing = ackedIds.filter((id) => !have.has(id));
      return {
        client: cl.name,
        // never delivered, live or in a catch-up: lost
        neverReceived: missing.filter((id) => !cl.received.includes(id)),
        // delivered, but not in the log (still waiting for an earlier seq, or dropped)
        droppedAsOld: missing
          .filter((id) => cl.received.includes(id))
          .map((id) => `${id} (${bodyOf.get(id)}) after ${Math.max(...cl.received.slice(0, cl.received.indexOf(id)))}`),
        // seq must run 1, 2, 3, ... without a gap or a repeat in what the client shows
        outOfOrder: cl.log.messages.some((m, i) => i > 0 && m.seq !== (cl.log.messages[i - 1]?.seq ?? 0) + 1),
        duplicateBodies: cl.log.bodies().length - new Set(cl.log.bodies()).size,
        neverStored: ids.filter((id) => !storedIds.has(id)),
        alteredBodies: cl.log.messages.filter((m) => bodyOf.has(m.id) && bodyOf.get(m.id) !== m.body).map((m) => m.id),
      };
    });
    const clean = (r: (typeof report)[number]) => ({
      client: r.client,
      neverReceived: [],
      droppedAsOld: [],
      outOfOrder: false,
      duplicateBodies: 0,
      neverStored: [],
      alteredBodies: [],
    });
    // Losses first (the catch-up after the kill), then everything else the id rule promises.
    expect(report.map((r) => ({ client: r.client, neverReceived: r.neverReceived }))).toEqual(
      report.map((r) => ({ client: r.client, neverReceived: [] })),
    );
    expect(report).toEqual(report.map(clean));
  }, 45_000);

  it("drops from presence, within seconds, the users who were only on the dead node", async () => {
    expect(killedAt).toBeGreaterThan(0);
    const stayed = ["owner", "talkerC", "watchA", "watchC", "moverToA", "moverToC", "twoNodes"].map(userId).sort();
    const watchers = ["owner", "talkerC", "watchA", "watchC"].map((k) => clients.get(k) as RoomClient);
    // What A and C show after the kill: goneB1 and goneB2 are gone; twoNodes is still there (its socket on A).
    await waitFor(
      () => watchers.every((w) => same(w.presence.filter((p) => p.at >= killedAt).at(-1)?.ids ?? [], stayed)),
      10_000,
    );
  });

  it("keeps the surviving nodes healthy and open to new connections", async () => {
    const [a, c] = [nodeA(), nodeC()];
    for (const node of [a, c]) expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
    await expect(fetch(`${nodeB().url}/healthz`)).rejects.toThrow();

    const late = await registerUser(c.url, "lateComer");
    members.set("lateComer", late);
    expect((await late.client.post("/api/v1/rooms/join", { code: room.inviteCode })).status).toBe(200);
    const newcomer = await roomClient("lateComer", a);
    clients.set("lateComer", newcomer);
    const watchC = clients.get("watchC") as RoomClient;
    const r = await sendNow(newcomer, "hello after the kill");
    if (!r.ok) throw new Error(`send: ${r.why}`);
    await waitFor(() => [newcomer, watchC].every((cl) => cl.log.messages.at(-1)?.id === r.message.id), 5000);
    await waitFor(() => watchC.presence.at(-1)?.ids.includes(late.me.user.id), 5000);
  });

  /** Users with a socket on A now, and A's clients that watch the presence. */
  const onA = () => ["owner", "watchA", "moverToA", "twoNodes", "lateComer"].map(userId).sort();
  const watchersOnA = () => ["owner", "watchA", "lateComer"].map((k) => clients.get(k) as RoomClient);
  const lastSince = (w: RoomClient, t: number) => w.presence.filter((p) => p.at >= t).at(-1)?.ids ?? [];

  it("drops the users of a dead node when nobody joins afterwards to recompute presence", async () => {
    // After B died, movers rejoined, and each join recomputes presence anyway. Here C dies (up since the start)
    // and nobody comes back: only the surviving node noticing the death can clear C's users.
    const c = nodeC();
    const killed = Date.now();
    c.kill("SIGKILL");
    expect(await c.exited).toBeNull();
    await waitFor(() => watchersOnA().every((w) => same(lastSince(w, killed), onA())), 10_000);
  }, 20_000);

  it("drops the user of a node that dies right after its clients joined", async () => {
    // A crash loop: the node comes up, a client lands on it and joins, and it dies at once.
    const d = await cluster.addNode();
    const lone = await registerUser(nodeA().url, "loneOnD");
    members.set("loneOnD", lone);
    expect((await lone.client.post("/api/v1/rooms/join", { code: room.inviteCode })).status).toBe(200);
    clients.set("loneOnD", await roomClient("loneOnD", d));
    const withLone = [...onA(), lone.me.user.id].sort();
    await waitFor(() => watchersOnA().every((w) => same(w.presence.at(-1)?.ids ?? [], withLone)), 5000);

    const killed = Date.now();
    d.kill("SIGKILL");
    expect(await d.exited).toBeNull();
    await waitFor(() => watchersOnA().every((w) => same(lastSince(w, killed), onA())), 10_000);
  }, 30_000);
});
