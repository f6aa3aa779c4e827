/**
 * Realtime rooms benchmark: `npm run bench:rooms`.
 *
 * Compares DoctorPy's realtime layer with a bare Socket.IO server (no auth, no validation, no persistence; same
 * event names and message shape) measured in the same run. Each server runs in its own child process (pinned
 * to the last core); the load generator (real socket.io-client sockets over WebSocket) runs in this process
 * (pinned to core 0). Prints markdown tables and writes them to the `## Rooms (bench:rooms)` section of
 * docs/BENCHMARKS.md.
 *
 * Scenarios (BENCH_SCENARIOS, comma-separated, default `memory,chat,cluster,fanout`):
 * - memory: BENCH_MEM_CONNECTIONS (10000) authenticated sockets on one node, opened BENCH_MEM_BATCH (500) at
 *   a time; server RSS and heap growth per connection after a forced GC.
 * - chat: BENCH_CHAT_USERS (1000) users in rooms of BENCH_CHAT_ROOM_SIZE (5), each sending one message every
 *   BENCH_CHAT_INTERVAL_MS (1000), measured in BENCH_CHAT_RUNS (3) windows of BENCH_CHAT_DURATION s (20) after
 *   BENCH_CHAT_WARMUP s (2), the median p99 kept; end-to-end
 *   latency from send to receipt by the other members. One node (PGlite / in memory).
 * - cluster: the chat scenario on 2 nodes sharing a private redis-server (free port) and, for DoctorPy, a fresh
 *   PostgreSQL database on BENCH_PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/test), dropped after.
 * - fanout: one room of BENCH_FANOUT_MEMBERS (500); BENCH_FANOUT_SENDERS (4) members send as fast as their
 *   BENCH_FANOUT_WINDOW (16) unacknowledged messages allow for BENCH_FANOUT_DURATION s (10) after
 *   BENCH_FANOUT_WARMUP s (2); then at BENCH_FANOUT_PACED_PCT (70) % of the bare server's measured rate.
 *   BENCH_FANOUT_RATE=<messages/s> paces DoctorPy alone at that rate (no bare server, no verdict): for trying
 *   a server change quickly at the rate a full run measured.
 *
 * Other environment: BENCH_SERVER_LOG=<level> with BENCH_CHILD_STDOUT=inherit (DoctorPy's logs on stdout),
 * BENCH_TRACE=1 (the DoctorPy children print their event-loop delay and chat batch sizes every second on stderr),
 * BENCH_CPU_PROF=<dir> (V8 CPU profiles of the DoctorPy children; summarise them with
 * `npx tsx bench/lib/cpuprofile.ts <file>`), BENCH_PIN=0 (no CPU pinning), BENCH_STRICT=1 (exit 1 when a target
 * fails), BENCH_NO_DOCS=1 (do not touch docs/BENCHMARKS.md).
 */

import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { resolve } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { testConfig } from "../tests/helpers/config.ts";
import { createTestDatabase } from "../tests/helpers/postgres.ts";
import { startRedis } from "../tests/helpers/redis.ts";
import { pinning, pinSelf, runBench, type ServerChild, type ServerSpec, startServerChild } from "./lib/child.ts";
import { LightSocket } from "./lib/light-socket.ts";
import { intEnv, killRedis, PG_ADMIN_URL, redisProcs } from "./lib/nodes.ts";
import {
  type BenchSocket,
  closeAll,
  connectMany,
  connectSocket,
  joinAll,
  machineTicks,
  Samples,
  selfCpuMicros,
  sleep,
  stampBody,
} from "./lib/realtime.ts";
import { describeMachine, machineFacts, publishSection } from "./lib/report.ts";
import type { MemoryReport } from "./lib/server-child.ts";

const ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "..");
const DOCS = resolve(ROOT, "docs/BENCHMARKS.md");
const HEADING = "## Rooms (bench:rooms)";

const TARGET = {
  /** server RSS growth per authenticated connection, KiB */
  kbPerConnection: 25,
  /** chat p99, ms */
  chatP99: 50,
  /** fan-out delivered messages/s, DoctorPy ÷ bare */
  fanoutRatio: 0.7,
  /** fan-out p99 at the paced rate, ms */
  fanoutP99: 25,
};

/** BENCH_TRACE=1: also per-message receipt spread in the fan-out (the children print their own trace) */
const TRACE = process.env.BENCH_TRACE === "1";
const cfg = {
  memConnections: intEnv("BENCH_MEM_CONNECTIONS", 10_000, 1),
  memBatch: intEnv("BENCH_MEM_BATCH", 500, 1),
  chatUsers: intEnv("BENCH_CHAT_USERS", 1000, 2),
  chatRoomSize: intEnv("BENCH_CHAT_ROOM_SIZE", 5, 2),
  chatIntervalMs: intEnv("BENCH_CHAT_INTERVAL_MS", 1000, 10),
  chatDuration: intEnv("BENCH_CHAT_DURATION", 20, 1),
  chatRuns: intEnv("BENCH_CHAT_RUNS", 3, 1),
  chatWarmup: intEnv("BENCH_CHAT_WARMUP", 2, 0),
  fanMembers: intEnv("BENCH_FANOUT_MEMBERS", 500, 2),
  fanSenders: intEnv("BENCH_FANOUT_SENDERS", 4, 1),
  fanWindow: intEnv("BENCH_FANOUT_WINDOW", 16, 1),
  fanDuration: intEnv("BENCH_FANOUT_DURATION", 10, 1),
  fanWarmup: intEnv("BENCH_FANOUT_WARMUP", 2, 0),
  fanPacedPct: intEnv("BENCH_FANOUT_PACED_PCT", 70, 1),
  /** a fixed paced rate (messages/s): DoctorPy alone, no bare server, no verdict; to iterate on the server */
  fanRate: process.env.BENCH_FANOUT_RATE ? intEnv("BENCH_FANOUT_RATE", 0, 1) : undefined,
};
const SCENARIOS = ["memory", "chat", "cluster", "fanout"] as const;
type Scenario = (typeof SCENARIOS)[number];
const selected = new Set(
  (process.env.BENCH_SCENARIOS ?? SCENARIOS.join(","))
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean),
);
for (const s of selected)
  if (!SCENARIOS.includes(s as Scenario)) throw new Error(`unknown scenario ${s} in BENCH_SCENARIOS`);
const runs = (s: Scenario) => selected.has(s);
if (cfg.fanSenders > cfg.fanMembers) throw new Error("BENCH_FANOUT_SENDERS must not exceed BENCH_FANOUT_MEMBERS");
const cpuProfDir = process.env.BENCH_CPU_PROF ? resolve(process.env.BENCH_CPU_PROF) : undefined;

// A hard bound on the whole run, generous: set-up (server start, fixtures, handshakes, joins) dominates the
// measured seconds at the default sizes.
const budgetMs =
  1000 *
  (60 +
    (runs("memory") ? 2 * (60 + cfg.memConnections / 100) : 0) +
    (runs("chat") ? 2 * (60 + cfg.chatWarmup + cfg.chatRuns * cfg.chatDuration + cfg.chatUsers / 50) : 0) +
    (runs("cluster") ? 2 * (90 + cfg.chatWarmup + cfg.chatRuns * cfg.chatDuration + cfg.chatUsers / 50) : 0) +
    (runs("fanout") ? 2 * (120 + 2 * (cfg.fanWarmup + cfg.fanDuration + 15) + cfg.fanMembers / 5) : 0));
const childTtlMs = budgetMs + 10_000;

/** redis-servers this run started, killed by handle if the run ends abruptly */

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

type Kind = "bare-io" | "doctorpy";
const LABEL: Record<Kind, string> = { "bare-io": "bare Socket.IO", doctorpy: "DoctorPy" };

/** BENCH_SERVER_LOG=warn|error|info (with BENCH_CHILD_STDOUT=inherit) shows DoctorPy's logs; silent by default */
const serverLog = (process.env.BENCH_SERVER_LOG ?? "silent") as ServerSpec["logLevel"];

function spec(kind: Kind, extra: Partial<ServerSpec> = {}): ServerSpec {
  return {
    server: kind,
    logLevel: serverLog,
    ttlMs: childTtlMs,
    exposeGc: true,
    ...(kind === "doctorpy" && cpuProfDir ? { cpuProfDir } : {}),
    ...extra,
  };
}

/** CPU use of `children` and of this process over a window, in % of one core. */
async function cpuMeter(children: ServerChild[]) {
  const t0 = performance.now();
  // A saturated server answers late: its event loop serves the sockets first.
  const server0 = await Promise.all(children.map((c) => c.cpuMicros(60_000)));
  const self0 = selfCpuMicros();
  const ticks0 = machineTicks();
  return async () => {
    const server1 = await Promise.all(children.map((c) => c.cpuMicros(60_000)));
    const wallMicros = (performance.now() - t0) * 1000;
    const ticks1 = machineTicks();
    return {
      server: server1.map((v, k) => (100 * (v - (server0[k] as number))) / wallMicros),
      self: (100 * (selfCpuMicros() - self0)) / wallMicros,
      /** % of the machine's CPU time stolen by the hypervisor during the window (NaN when unknown) */
      steal:
        ticks0 && ticks1 && ticks1.total > ticks0.total
          ? (100 * (ticks1.steal - ticks0.steal)) / (ticks1.total - ticks0.total)
          : Number.NaN,
    };
  };
}

const KB = 1024;
const MB = 1024 * 1024;
const f0 = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "n/a");
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "n/a");
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : "n/a");
const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a) ? `${(a / b).toFixed(2)}×` : "n/a");
const verdict = (ok: boolean) => (ok ? "**PASS**" : "**FAIL**");

// ---------------------------------------------------------------------------------------------------------------
// 1. Memory per connection

interface MemoryRow {
  kind: Kind;
  connections: number;
  before: MemoryReport;
  after: MemoryReport;
  /** RSS and heap used growth per socket (bytes), least-squares slope over the samples taken every quarter */
  rssSlope: number;
  heapSlope: number;
  connectMs: number;
  fixturesMs: number | null;
}

/** Least-squares slope of y over x. */
function slope(points: [number, number][]): number {
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

async function memoryScenario(kind: Kind): Promise<MemoryRow> {
  const n = cfg.memConnections;
  log(`  memory, ${LABEL[kind]}: ${n} sockets ...`);
  const server = await startServerChild(spec(kind));
  const sockets: BenchSocket[] = [];
  try {
    let tokens: string[] | undefined;
    let fixturesMs: number | null = null;
    if (kind === "doctorpy") {
      const fx = await server.fixtures(n, 0);
      tokens = fx.users.map((u) => u.token);
      fixturesMs = fx.ms;
      log(`    ${n} users with a session and an access token each created in ${f1(fx.ms / 1000)} s`);
      // The handshake really authenticates: without a token, or with a forged one, the server refuses.
      await expectRefused(server.url, undefined, "unauthenticated");
      await expectRefused(server.url, `${tokens[0]?.slice(0, -4)}AAAA`, "session_expired");
    }
    const before = await server.memory();
    // Sockets open in four steps, with a sample (after a full GC) after each: the per-socket figure is the slope
    // through the five samples, less at the mercy of one noisy sample than the difference of the two ends.
    const samples: [number, MemoryReport][] = [[0, before]];
    let connectMs = 0;
    const step = Math.ceil(n / 4);
    for (let from = 0; from < n; from += step) {
      const started = performance.now();
      const count = Math.min(step, n - from);
      sockets.push(...(await connectMany(connectSocket, [server.url], count, (i) => tokens?.[from + i], cfg.memBatch)));
      connectMs += performance.now() - started;
      log(`    ${sockets.length} connected (${f1(connectMs / 1000)} s)`);
      samples.push([sockets.length, await server.memory()]);
    }
    await sleep(1000);
    const connected = sockets.filter((s) => s.connected).length;
    if (connected !== n) throw new Error(`only ${connected} of ${n} sockets still connected`);
    const after = await server.memory();
    samples.push([n, after]);
    const row = {
      kind,
      connections: n,
      before,
      after,
      rssSlope: slope(samples.map(([x, m]) => [x, m.rss])),
      heapSlope: slope(samples.map(([x, m]) => [x, m.heapUsed])),
      connectMs,
      fixturesMs,
    };
    log(
      `    RSS ${f1(before.rss / MB)} → ${f1(after.rss / MB)} MB (${f1(perConn(row, "rss"))} KB/conn), heap used ` +
        `${f1(before.heapUsed / MB)} → ${f1(after.heapUsed / MB)} MB (${f1(perConn(row, "heapUsed"))} KB/conn); ` +
        `fitted over ${samples.length} samples: RSS ${f1(row.rssSlope / KB)}, heap ${f1(row.heapSlope / KB)} KB/conn`,
    );
    return row;
  } finally {
    await server.stop();
    closeAll(sockets);
  }
}

async function expectRefused(url: string, token: string | undefined, code: string): Promise<void> {
  try {
    const s = await connectSocket(url, token, 10_000);
    s.close();
  } catch (err) {
    if (String((err as Error).message).includes(code)) return;
    throw new Error(`handshake ${token ? "with a forged token" : "without a token"}: expected ${code}, got ${err}`);
  }
  throw new Error(`handshake ${token ? "with a forged token" : "without a token"} was accepted`);
}

const perConn = (r: MemoryRow, key: "rss" | "heapUsed" | "external" | "arrayBuffers") =>
  (r.after[key] - r.before[key]) / r.connections / KB;

// ---------------------------------------------------------------------------------------------------------------
// Shared by chat and fan-out: rooms, sockets in them, and what the receivers saw

interface Room {
  id: string;
  members: number[];
}

interface Topology {
  kind: Kind;
  nodes: ServerChild[];
  rooms: Room[];
  tokens: string[] | undefined;
  setupMs: number;
}

/** Users, sessions, tokens and rooms of `roomSize` (DoctorPy, created in the first node), or just room ids (bare). */
async function makeRooms(kind: Kind, nodes: ServerChild[], users: number, roomSize: number): Promise<Topology> {
  const started = performance.now();
  if (kind === "doctorpy") {
    const fx = await (nodes[0] as ServerChild).fixtures(users, roomSize);
    return {
      kind,
      nodes,
      rooms: fx.rooms,
      tokens: fx.users.map((u) => u.token),
      setupMs: performance.now() - started,
    };
  }
  const rooms: Room[] = [];
  for (let first = 0; first < users; first += roomSize) {
    rooms.push({
      id: randomUUID(),
      members: Array.from({ length: Math.min(roomSize, users - first) }, (_, k) => first + k),
    });
  }
  return { kind, nodes, rooms, tokens: undefined, setupMs: 0 };
}

/** Connects every user (user `i` to node `i % nodes`) and joins it to its room. */
async function connectAndJoin(
  t: Topology,
  users: number,
): Promise<{ sockets: LightSocket[]; connectMs: number; joinMs: number }> {
  const roomOf: string[] = new Array(users);
  for (const r of t.rooms) for (const m of r.members) roomOf[m] = r.id;
  const started = performance.now();
  const sockets = await connectMany(
    (url, token) => LightSocket.connect(url, token),
    t.nodes.map((n) => n.url),
    users,
    (i) => t.tokens?.[i],
    250,
  );
  const connectMs = performance.now() - started;
  try {
    const joinMs = await joinAll(sockets, (i) => roomOf[i] as string, 20);
    return { sockets, connectMs, joinMs };
  } catch (err) {
    closeAll(sockets);
    throw err;
  }
}

/** One measured window: messages sent inside it, their receipts by the other members, their latencies. */
class Window {
  t0 = Number.POSITIVE_INFINITY;
  t1 = Number.POSITIVE_INFINITY;
  readonly samples = new Samples();
  /** messages sent inside the window */
  sent = 0;
  /** receipts the messages sent inside the window should have (members other than the sender) */
  expected = 0;
  /** receipts by other members of messages sent inside the window */
  got = 0;
  /** every chat:message received (sender's echo included) while the window was open, whenever sent */
  deliveriesInWindow = 0;
  ackErrors = 0;
  readonly errorCodes = new Map<string, number>();
  outstanding = 0;
  /** open-loop sends skipped inside the window because `maxOutstanding` messages were still unacknowledged */
  skipped = 0;

  /** BENCH_TRACE: each message's first and last receipt (ms after its send), keyed by its send time */
  readonly spread = new Map<number, [number, number]>();

  /** open-loop senders stop adding to a backlog past this many unacknowledged messages */
  constructor(readonly maxOutstanding = Number.POSITIVE_INFINITY) {}

  /** BENCH_TRACE: p50 / p99 of the first receipt of each message, and of the time from its first to its last */
  spreadSummary(): string {
    const first = new Samples();
    const span = new Samples();
    for (const [a, b] of this.spread.values()) {
      first.add(a);
      span.add(b - a);
    }
    return (
      `first receipt p50 ${f1(first.percentile(50))} p99 ${f1(first.percentile(99))} ms, ` +
      `first to last p50 ${f1(span.percentile(50))} p99 ${f1(span.percentile(99))} ms`
    );
  }

  open(durationS: number): void {
    this.t0 = performance.now();
    this.t1 = this.t0 + durationS * 1000;
  }

  get durationS(): number {
    return (this.t1 - this.t0) / 1000;
  }

  error(code: string): void {
    this.ackErrors++;
    this.errorCodes.set(code, (this.errorCodes.get(code) ?? 0) + 1);
  }

  /** waits until every receipt arrived and every ack came back, or `maxMs` */
  async drain(maxMs: number): Promise<void> {
    const until = performance.now() + maxMs;
    while (performance.now() < until && (this.got < this.expected || this.outstanding > 0)) await sleep(50);
  }
}

/** Records every chat:message on every socket into the windows of `current()` (by receipt and by send time). */
function listen(sockets: LightSocket[], current: () => Window[]): void {
  sockets.forEach((socket, i) => {
    socket.onChatStamp((sender, t) => {
      const now = performance.now();
      for (const w of current()) {
        if (now >= w.t0 && now < w.t1) w.deliveriesInWindow++;
        if (Number.isNaN(t) || sender === i) continue;
        if (t >= w.t0 && t < w.t1) {
          w.samples.add(now - t);
          w.got++;
          if (TRACE) {
            const seen = w.spread.get(t);
            if (seen) seen[1] = now - t;
            else w.spread.set(t, [now - t, now - t]);
          }
        }
      }
    });
  });
}

/** Sends one chat message from socket `i` into `roomId`, stamped with the send time. */
function sendOne(w: Window, socket: LightSocket, i: number, roomId: string, others: number, done?: () => void): void {
  const t = performance.now();
  const inWindow = t >= w.t0 && t < w.t1;
  if (w.outstanding >= w.maxOutstanding) {
    if (inWindow) w.skipped++;
    return;
  }
  if (inWindow) {
    w.sent++;
    w.expected += others;
  }
  w.outstanding++;
  socket.request("chat:send", { roomId, body: stampBody(i, t) }).then((reply) => {
    w.outstanding--;
    if (!reply.ok) w.error(reply.error?.code ?? "no ack");
    if (!reply.ok && inWindow) w.expected -= others;
    done?.();
  });
}

interface LatencyRow {
  label: string;
  kind: Kind;
  nodes: number;
  users: number;
  rooms: number;
  sent: number;
  expected: number;
  got: number;
  ackErrors: string;
  skipped: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  serverCpu: number[];
  /** server CPU time (all nodes) per message sent in the window, ms */
  cpuMsPerMsg: number;
  selfCpu: number;
  setupS: number;
  /** p99 of each measured window (chat), in order; the row is the window with the median p99 */
  p99Runs?: number[];
  /** % of the machine's CPU stolen by the hypervisor during the window */
  steal: number;
  /** the same for each window (chat) */
  stealRuns?: number[];
}

function summary(
  label: string,
  t: Topology,
  users: number,
  w: Window,
  cpu: { server: number[]; self: number; steal: number },
) {
  return {
    label,
    kind: t.kind,
    nodes: t.nodes.length,
    users,
    rooms: t.rooms.length,
    sent: w.sent,
    expected: w.expected,
    got: w.got,
    ackErrors:
      w.ackErrors === 0 ? "0" : `${w.ackErrors} (${[...w.errorCodes].map(([c, n]) => `${c} ×${n}`).join(", ")})`,
    skipped: w.skipped,
    p50: w.samples.percentile(50),
    p90: w.samples.percentile(90),
    p99: w.samples.percentile(99),
    max: w.samples.max(),
    serverCpu: cpu.server,
    cpuMsPerMsg: (cpu.server.reduce((a, b) => a + b, 0) * 10 * w.durationS) / w.sent,
    selfCpu: cpu.self,
    steal: cpu.steal,
    setupS: 0,
  } satisfies LatencyRow;
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Chat latency

async function chatScenario(kind: Kind, nodes: ServerChild[], label: string): Promise<LatencyRow> {
  const users = cfg.chatUsers;
  log(`  chat, ${label}: ${users} users in rooms of ${cfg.chatRoomSize}, one message per ${cfg.chatIntervalMs} ms ...`);
  const t = await makeRooms(kind, nodes, users, cfg.chatRoomSize);
  const { sockets, connectMs, joinMs } = await connectAndJoin(t, users);
  log(
    `    set-up: fixtures ${f1(t.setupMs / 1000)} s, ${users} handshakes ${f1(connectMs / 1000)} s, ` +
      `joins ${f1(joinMs / 1000)} s`,
  );
  const timers: NodeJS.Timeout[] = [];
  try {
    // An overloaded server would otherwise collect an ever-growing backlog: past one unacknowledged message per
    // user on average, users skip their turn (counted as "not sent").
    let w = new Window(users);
    const windows: Window[] = [];
    listen(sockets, () => windows);
    for (const room of t.rooms) {
      for (const i of room.members) {
        const socket = sockets[i] as LightSocket;
        // `w` is read at each send: a message counts in the window it was sent in.
        const send = () => sendOne(w, socket, i, room.id, room.members.length - 1);
        // A random phase per user, so that the messages spread over each interval.
        timers.push(
          setTimeout(() => {
            send();
            timers.push(setInterval(send, cfg.chatIntervalMs));
          }, Math.random() * cfg.chatIntervalMs),
        );
      }
    }
    await sleep(cfg.chatWarmup * 1000);
    // Back-to-back windows: this machine's latencies vary from minute to minute, so the verdict takes the median.
    const measured: { w: Window; cpu: { server: number[]; self: number; steal: number } }[] = [];
    for (let run = 0; run < cfg.chatRuns; run++) {
      if (run > 0) w = new Window(users);
      windows.push(w);
      const meter = await cpuMeter(nodes);
      w.open(cfg.chatDuration);
      await sleep(cfg.chatDuration * 1000);
      measured.push({ w, cpu: await meter() });
    }
    for (const timer of timers) clearTimeout(timer);
    for (const m of measured) await m.w.drain(10_000);
    const rows = measured.map((m) => summary(label, t, users, m.w, m.cpu));
    for (const r of rows) {
      log(
        `    ${r.sent} sent, ${r.got}/${r.expected} receipts, p50 ${f1(r.p50)} ms, p99 ${f1(r.p99)} ms, ` +
          `max ${f1(r.max)} ms, ack errors ${r.ackErrors}, not sent (backlog) ${r.skipped}, server CPU ${r.serverCpu.map(f0).join(" + ")} %, ` +
          `load generator CPU ${f0(r.selfCpu)} %, CPU stolen ${f1(r.steal)} %`,
      );
    }
    const row = [...rows].sort((a, b) => a.p99 - b.p99)[Math.floor(rows.length / 2)] as LatencyRow;
    row.p99Runs = rows.map((r) => r.p99);
    row.stealRuns = rows.map((r) => r.steal);
    row.setupS = (t.setupMs + connectMs + joinMs) / 1000;
    return row;
  } finally {
    for (const timer of timers) clearTimeout(timer);
    await Promise.all(nodes.map((n) => n.stop()));
    closeAll(sockets);
  }
}

async function chatOneNode(kind: Kind): Promise<LatencyRow> {
  const node = await startServerChild(spec(kind));
  return chatScenario(kind, [node], `${LABEL[kind]}, 1 node${kind === "doctorpy" ? ", PGlite" : ""}`);
}

/** Two nodes pinned to the server core, a private redis-server, and (DoctorPy) a fresh PostgreSQL database. */
async function chatCluster(kind: Kind): Promise<LatencyRow> {
  const redis = await startRedis();
  redisProcs.add(redis.process);
  let db: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
  const nodes: ServerChild[] = [];
  try {
    const env: Record<string, string> = { BENCH_REDIS_URL: redis.url };
    if (kind === "doctorpy") {
      db = await createTestDatabase(PG_ADMIN_URL);
      env.BENCH_DATABASE_URL = db.url;
      env.BENCH_SECRETS = JSON.stringify(testConfig().secrets);
    }
    // The first node runs the migrations; the second starts once it is up.
    nodes.push(await startServerChild(spec(kind, { env })));
    nodes.push(await startServerChild(spec(kind, { env })));
    const label = `${LABEL[kind]}, 2 nodes, ${kind === "doctorpy" ? "PostgreSQL + " : ""}Redis adapter`;
    return await chatScenario(kind, nodes, label);
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    await db?.drop();
    await redis.stop();
    redisProcs.delete(redis.process);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Fan-out

interface FanoutRow extends LatencyRow {
  phase: "max" | "paced";
  /** chat:message receipts per second over all members while the window was open */
  deliveredPerSec: number;
  /** messages sent per second */
  sentPerSec: number;
  joinS: number;
  /** the load generator's own event-loop delay while the window was open, p99 ms: receipts wait this long too */
  genLagP99: number;
}

async function fanoutScenario(kind: Kind, pacedMsgsPerSec: (maxRow: FanoutRow) => number): Promise<FanoutRow[]> {
  const m = cfg.fanMembers;
  log(`  fan-out, ${LABEL[kind]}: one room of ${m}, ${cfg.fanSenders} senders ...`);
  const node = await startServerChild(spec(kind));
  const t = await makeRooms(kind, [node], m, m);
  const room = t.rooms[0] as Room;
  const { sockets, connectMs, joinMs } = await connectAndJoin(t, m);
  log(
    `    set-up: fixtures ${f1(t.setupMs / 1000)} s, ${m} handshakes ${f1(connectMs / 1000)} s, ` +
      `${m} joins ${f1(joinMs / 1000)} s`,
  );
  const rows: FanoutRow[] = [];
  try {
    let w = new Window();
    listen(sockets, () => [w]);
    const others = m - 1;
    const senders = Array.from({ length: cfg.fanSenders }, (_, k) => k);
    // The load generator's event loop: a receipt is timed when its turn comes, so this delay is part of every p99.
    const lag = monitorEventLoopDelay({ resolution: 1 });
    const finish = (phase: FanoutRow["phase"], cpu: { server: number[]; self: number; steal: number }): FanoutRow => {
      const base = summary(`${LABEL[kind]}, ${phase === "max" ? "as fast as acks allow" : "paced"}`, t, m, w, cpu);
      return {
        ...base,
        phase,
        deliveredPerSec: w.deliveriesInWindow / w.durationS,
        sentPerSec: w.sent / w.durationS,
        joinS: joinMs / 1000,
        genLagP99: lag.percentile(99) / 1e6,
      };
    };

    // Phase 1: each sender keeps `fanWindow` messages unacknowledged (the ack comes after the broadcast).
    let running = true;
    const perSender = senders.map(() => 0);
    const pump = (i: number) => {
      while (running && (perSender[i] as number) < cfg.fanWindow) {
        perSender[i] = (perSender[i] as number) + 1;
        sendOne(w, sockets[i] as LightSocket, i, room.id, others, () => {
          perSender[i] = (perSender[i] as number) - 1;
          pump(i);
        });
      }
    };
    for (const i of senders) pump(i);
    await sleep(cfg.fanWarmup * 1000);
    let meter = await cpuMeter([node]);
    w.open(cfg.fanDuration);
    lag.reset();
    lag.enable();
    await sleep(cfg.fanDuration * 1000);
    lag.disable();
    let cpu = await meter();
    running = false;
    await w.drain(15_000);
    const max = finish("max", cpu);
    rows.push(max);
    logFanout(max);
    if (TRACE) log(`    max, per message: ${w.spreadSummary()}`);

    // Phase 2: open loop at a fixed rate, spread over the senders.
    const rate = pacedMsgsPerSec(max);
    // Open loop, but an overloaded server is not buried: past the closed-loop phase's window, sends are skipped.
    w = new Window(cfg.fanWindow * cfg.fanSenders);
    let sent = 0;
    const start = performance.now();
    const ticker = setInterval(() => {
      const due = Math.min(1000, Math.floor(((performance.now() - start) * rate) / 1000) - sent);
      for (let k = 0; k < due; k++, sent++) {
        const i = senders[sent % senders.length] as number;
        sendOne(w, sockets[i] as LightSocket, i, room.id, others);
      }
    }, 1);
    try {
      await sleep(cfg.fanWarmup * 1000);
      meter = await cpuMeter([node]);
      w.open(cfg.fanDuration);
      lag.reset();
      lag.enable();
      await sleep(cfg.fanDuration * 1000);
      lag.disable();
      cpu = await meter();
    } finally {
      clearInterval(ticker);
    }
    await w.drain(15_000);
    const paced = finish("paced", cpu);
    rows.push(paced);
    logFanout(paced);
    if (TRACE) log(`    paced, per message: ${w.spreadSummary()}`);
    return rows;
  } finally {
    await node.stop();
    closeAll(sockets);
  }
}

function logFanout(r: FanoutRow): void {
  log(
    `    ${r.phase}: ${f0(r.sentPerSec)} msgs/s sent, ${f0(r.deliveredPerSec)} deliveries/s, ` +
      `${r.got}/${r.expected} receipts, p50 ${f1(r.p50)} ms, p99 ${f1(r.p99)} ms, ack errors ${r.ackErrors}, ` +
      `not sent (backlog) ${r.skipped}, ` +
      `server CPU ${f0(r.serverCpu[0] ?? Number.NaN)} %, load generator CPU ${f0(r.selfCpu)} % ` +
      `(its loop delay p99 ${f1(r.genLagP99)} ms), CPU stolen ${f1(r.steal)} %`,
  );
}

// ---------------------------------------------------------------------------------------------------------------

function clusterAvailable(): string | null {
  const redis = spawnSync("redis-server", ["--version"], { stdio: "ignore" });
  if (redis.error || redis.status !== 0) return "redis-server is not on the PATH";
  return null;
}

async function run(): Promise<number> {
  const machine = machineFacts();
  const pinned = pinSelf();
  log(`bench:rooms on ${describeMachine(machine)}; load average ${machine.load.toFixed(2)}`);
  const busy = machine.load > 0.5;
  if (busy) log("warning: the machine is busy with other work; latencies will be worse than on an idle one");
  log(
    pinned && pinning
      ? `servers pinned to CPU ${pinning.serverCpu}, load generator (this process) to CPU ${pinning.loadCpu}`
      : "no CPU pinning",
  );
  log(`time budget ${Math.round(budgetMs / 1000)} s`);
  const started = performance.now();

  const memory: MemoryRow[] = [];
  if (runs("memory")) for (const kind of ["bare-io", "doctorpy"] as const) memory.push(await memoryScenario(kind));

  const chat: LatencyRow[] = [];
  if (runs("chat")) for (const kind of ["bare-io", "doctorpy"] as const) chat.push(await chatOneNode(kind));
  let clusterSkipped: string | null = null;
  if (runs("cluster")) {
    clusterSkipped = clusterAvailable();
    if (clusterSkipped) log(`  cluster scenario skipped: ${clusterSkipped}`);
    else {
      try {
        for (const kind of ["bare-io", "doctorpy"] as const) chat.push(await chatCluster(kind));
      } catch (err) {
        // PostgreSQL may be missing on some machines: say so in the report rather than lose the other scenarios.
        clusterSkipped = `failed: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`;
        log(`  cluster scenario ${clusterSkipped}`);
      }
    }
  }

  const fanout: FanoutRow[] = [];
  if (runs("fanout")) {
    const pct = cfg.fanPacedPct / 100;
    const fixed = cfg.fanRate;
    if (fixed !== undefined) fanout.push(...(await fanoutScenario("doctorpy", () => fixed)));
    else {
      const bare = await fanoutScenario("bare-io", (max) => max.sentPerSec * pct);
      const bareMax = bare[0] as FanoutRow;
      fanout.push(...bare);
      fanout.push(...(await fanoutScenario("doctorpy", () => bareMax.sentPerSec * pct)));
    }
  }
  const elapsedS = (performance.now() - started) / 1000;

  // ------------------------------------------------------------------------------------------------- report
  const tables: string[] = [];
  const verdicts: string[] = [];
  let failed = false;
  const check = (ok: boolean, text: string) => {
    verdicts.push(`- ${text} → ${verdict(ok)}`);
    if (!ok) failed = true;
  };
  const lossless = (r: LatencyRow) => r.got === r.expected && r.ackErrors === "0" && r.skipped === 0;

  if (memory.length > 0) {
    const bare = memory.find((r) => r.kind === "bare-io");
    const lines = [
      "| server | sockets | RSS before → after, MB | RSS / socket, fitted, KB | RSS / socket, ends, KB | heap used / socket, fitted, KB | heap used / socket, ends, KB | external / socket, KB | handshakes/s | RSS / socket vs bare (fitted) |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ];
    for (const r of memory) {
      lines.push(
        `| ${LABEL[r.kind]} | ${f0(r.connections)} | ${f1(r.before.rss / MB)} → ${f1(r.after.rss / MB)} | ` +
          `${f1(r.rssSlope / KB)} | ${f1(perConn(r, "rss"))} | ${f1(r.heapSlope / KB)} | ${f1(perConn(r, "heapUsed"))} | ` +
          `${f1(perConn(r, "external"))} | ${f0(r.connections / (r.connectMs / 1000))} | ` +
          `${bare ? ratio(r.rssSlope, bare.rssSlope) : "n/a"} |`,
      );
    }
    tables.push(`### Memory per connection\n\n${lines.join("\n")}`);
    const dp = memory.find((r) => r.kind === "doctorpy");
    if (dp) {
      const rss = dp.rssSlope / KB;
      check(
        rss <= TARGET.kbPerConnection,
        `memory: DoctorPy server RSS growth ${f1(rss)} KB per authenticated socket, fitted over a sample at each quarter (between the two ends: ${f1(perConn(dp, "rss"))} KB; heap ${f1(dp.heapSlope / KB)} KB), target ≤ ${TARGET.kbPerConnection} KB`,
      );
    }
  }

  if (chat.length > 0) {
    const lines = [
      "| setup | users (rooms) | messages sent | not sent (backlog) | receipts / expected | ack errors | p50 ms | p90 ms | p99 ms | max ms | server CPU % | server CPU ms / message | p99 vs bare | p99 of each window, ms | CPU stolen in each window, % |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ];
    for (const r of chat) {
      const bare = chat.find((b) => b.kind === "bare-io" && b.nodes === r.nodes);
      lines.push(
        `| ${r.label} | ${f0(r.users)} (${f0(r.rooms)}) | ${f0(r.sent)} | ${f0(r.skipped)} | ${f0(r.got)} / ${f0(r.expected)} | ${r.ackErrors} | ` +
          `${f1(r.p50)} | ${f1(r.p90)} | ${f1(r.p99)} | ${f1(r.max)} | ${r.serverCpu.map(f0).join(" + ")} | ${f2(r.cpuMsPerMsg)} | ` +
          `${bare ? ratio(r.p99, bare.p99) : "n/a"} | ${(r.p99Runs ?? [r.p99]).map(f1).join(", ")} | ` +
          `${(r.stealRuns ?? [r.steal]).map(f1).join(", ")} |`,
      );
    }
    tables.push(`### Chat latency\n\n${lines.join("\n")}`);
    for (const r of chat.filter((c) => c.kind === "doctorpy")) {
      check(
        r.p99 < TARGET.chatP99 && lossless(r),
        `chat (${r.label}): p99 ${f1(r.p99)} ms (median of ${(r.p99Runs ?? [r.p99]).length} windows), ${r.got}/${r.expected} receipts, ack errors ${r.ackErrors}, ${r.skipped} not sent (backlog); target p99 < ${TARGET.chatP99} ms, nothing lost`,
      );
    }
  }

  if (fanout.length > 0) {
    const bareMax = fanout.find((r) => r.kind === "bare-io" && r.phase === "max");
    const lines = [
      "| server, phase | members | messages/s sent | not sent (backlog) | deliveries/s | receipts / expected | ack errors | p50 ms | p99 ms | server CPU % | server CPU ms / message | load generator CPU % | load generator loop delay p99 ms | CPU stolen % | deliveries/s vs bare |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ];
    for (const r of fanout) {
      lines.push(
        `| ${r.label} | ${f0(r.users)} | ${f0(r.sentPerSec)} | ${f0(r.skipped)} | ${f0(r.deliveredPerSec)} | ${f0(r.got)} / ${f0(r.expected)} | ` +
          `${r.ackErrors} | ${f1(r.p50)} | ${f1(r.p99)} | ${f0(r.serverCpu[0] ?? Number.NaN)} | ${f2(r.cpuMsPerMsg)} | ${f0(r.selfCpu)} | ${f1(r.genLagP99)} | ${f1(r.steal)} | ` +
          `${bareMax && r.phase === "max" ? ratio(r.deliveredPerSec, bareMax.deliveredPerSec) : "—"} |`,
      );
    }
    const joins = ["bare-io", "doctorpy"]
      .map((k) => fanout.find((r) => r.kind === k))
      .filter((r): r is FanoutRow => r !== undefined)
      .map((r) => `${LABEL[r.kind]} ${f1(r.joinS)} s`)
      .join(", ");
    tables.push(
      `### Fan-out\n\n${lines.join("\n")}\n\nTime for the ${cfg.fanMembers} members to join the room: ${joins}.`,
    );
    const dpMax = fanout.find((r) => r.kind === "doctorpy" && r.phase === "max");
    const dpPaced = fanout.find((r) => r.kind === "doctorpy" && r.phase === "paced");
    if (dpMax && bareMax) {
      const q = dpMax.deliveredPerSec / bareMax.deliveredPerSec;
      check(
        q >= TARGET.fanoutRatio && lossless(dpMax),
        `fan-out throughput: DoctorPy ${f0(dpMax.deliveredPerSec)} vs bare ${f0(bareMax.deliveredPerSec)} deliveries/s = ${(100 * q).toFixed(0)} %, target ≥ ${100 * TARGET.fanoutRatio} %`,
      );
    }
    if (dpPaced && bareMax) {
      check(
        dpPaced.p99 < TARGET.fanoutP99 && lossless(dpPaced),
        `fan-out latency at ${cfg.fanPacedPct} % of the bare rate (${f0(dpPaced.sentPerSec)} msgs/s × ${cfg.fanMembers} members): DoctorPy p99 ${f1(dpPaced.p99)} ms, ${dpPaced.got}/${dpPaced.expected} receipts, ${dpPaced.skipped} not sent (backlog); target < ${TARGET.fanoutP99} ms`,
      );
    }
  }

  const reproduce = [
    `BENCH_MEM_CONNECTIONS=${cfg.memConnections}`,
    `BENCH_CHAT_USERS=${cfg.chatUsers}`,
    `BENCH_CHAT_DURATION=${cfg.chatDuration}`,
    `BENCH_FANOUT_MEMBERS=${cfg.fanMembers}`,
    `BENCH_FANOUT_DURATION=${cfg.fanDuration}`,
    ...(process.env.BENCH_SCENARIOS ? [`BENCH_SCENARIOS=${[...selected].join(",")}`] : []),
    "npm run bench:rooms",
  ].join(" ");
  const method = [
    "Each server runs alone in its own child process on 127.0.0.1" +
      (pinned && pinning
        ? ` pinned to CPU ${pinning.serverCpu} (both nodes of the 2-node runs share it); the load generator — real` +
          ` WebSocket clients — runs in the benchmark process on CPU ${pinning.loadCpu}.`
        : "; no CPU pinning; the load generator (WebSocket clients) runs in the benchmark process.") +
      " Every server, DoctorPy's and the bare ones, runs with the V8 flags of `npm start` (`server/node-flags.ts`)," +
      " and so does the benchmark process itself (package.json's bench scripts), so that the load generator's own" +
      " garbage collection does not show as the servers' latency. *load generator loop delay* is its event-loop" +
      " delay while the window was open (p99)." +
      " Its clients are socket.io-client for the memory scenario and `bench/lib/light-socket.ts` for chat and" +
      " fan-out: the same Engine.IO/Socket.IO packets over a WebSocket spoken straight over `node:net` (every" +
      " connection reads into one shared buffer, frames are parsed in place and each `chat:message`'s stamp is" +
      " read from its bytes, so that receiving allocates nothing), which socket.io-client and the `ws` client" +
      " could not do fast enough, nor without garbage-collection pauses of their own, to measure fan-out." +
      " *bare Socket.IO* is Socket.IO 4.8 on a plain HTTP server with the same path, events and message shape" +
      " (`room:join` joins, `chat:send` broadcasts a ChatMessage-like object to the room and acks): no auth, no" +
      " validation, no persistence. DoctorPy is `startServer` with log level silent and rate limits raised to" +
      " 10,000,000; its users, sessions, access tokens and rooms are created through the domain services in the" +
      " server child (accounts inserted in bulk with one shared argon2 hash), and every socket authenticates its" +
      " handshake with its own access token.",
    `*Memory*: ${f0(cfg.memConnections)} sockets opened ${cfg.memBatch} at a time; server \`process.memoryUsage()\`` +
      " after a forced full GC (`--expose-gc`) before the first handshake (DoctorPy: after its users and sessions" +
      " exist), after each quarter of the sockets and once more a second after the last. *fitted* is the" +
      " least-squares slope through those samples, *ends* the difference of the first and last divided by the" +
      " sockets: RSS after a GC moves by tens of MB from one sample to the next (the allocator and V8 keep pages they" +
      " freed), so a single sample before the load can shift the ends figure by several KB per socket; the slope" +
      " uses all of them. The target is judged on the fitted RSS. KB = 1,024 bytes.",
    `*Chat*: ${f0(cfg.chatUsers)} users in rooms of ${cfg.chatRoomSize}, each sending one message every` +
      ` ${cfg.chatIntervalMs} ms at a random phase; ${cfg.chatRuns} back-to-back windows of ${cfg.chatDuration} s` +
      ` after ${cfg.chatWarmup} s of warm-up, and the row is the window with the median p99 (latencies here vary` +
      " from minute to minute with the machine's neighbours: all windows are listed);" +
      " latency = receipt by each other member − send time, both on the load generator's clock (the message body" +
      " carries the send time). DoctorPy persists every message before it broadcasts it. The 2-node runs put" +
      " user *i* on node *i* mod 2, so rooms span both nodes and the Redis adapter carries the broadcasts" +
      " (DoctorPy also keeps its rate-limit counters in Redis there); redis-server and PostgreSQL are not pinned.",
    `*Fan-out*: one room of ${f0(cfg.fanMembers)}; ${cfg.fanSenders} members send, first as fast as` +
      ` ${cfg.fanWindow} unacknowledged messages each allow (${cfg.fanDuration} s after ${cfg.fanWarmup} s), then` +
      ` open-loop at ${cfg.fanPacedPct} % of the bare server's measured message rate. *deliveries/s* counts every` +
      " `chat:message` received by any member (the sender's echo included) while the window was open; latencies" +
      " are over the other members' receipts. A load-generator CPU near 100 % means the client side, not the" +
      " server, was the limit.",
    "*CPU stolen* is the share of the machine's CPU time that the hypervisor gave to other guests while the" +
      " window was open (`/proc/stat`): this machine is a virtual machine, and windows with a few % stolen" +
      " show latencies several times those of windows without.",
  ];

  const body = [
    `Measured ${machine.date.slice(0, 10)} on ${describeMachine(machine)}; the whole run took ${f0(elapsedS)} s.`,
    "",
    `Reproduce: \`${reproduce}\`.`,
    "",
    ...method.flatMap((p) => [p, ""]),
    busy
      ? `The machine was not idle: 1-minute load average ${machine.load.toFixed(2)} on ${machine.cores} cores when` +
        " the run started, so latencies are pessimistic; compare rows of one run with each other."
      : `1-minute load average when the run started: ${machine.load.toFixed(2)}.`,
    "",
    ...tables.flatMap((t) => [t, ""]),
    ...(clusterSkipped ? [`2-node runs skipped: ${clusterSkipped}.`, ""] : []),
    "Targets:",
    "",
    ...verdicts,
  ].join("\n");

  process.stdout.write(
    `\n${HEADING}\n\nMachine: ${describeMachine(machine)}, ${machine.date}, load average ${machine.load.toFixed(2)}\n\n` +
      `${tables.join("\n\n")}\n\nTargets:\n${verdicts.join("\n")}\n`,
  );

  if (process.env.BENCH_NO_DOCS !== "1" && cfg.fanRate === undefined) {
    await publishSection(DOCS, HEADING, body, machine);
    log(`wrote the "${HEADING}" section of ${DOCS}`);
  }
  if (cpuProfDir) log(`CPU profiles of the DoctorPy children: ${cpuProfDir}`);
  return failed && process.env.BENCH_STRICT === "1" ? 1 : 0;
}

// Thousands of closed sockets may still hold timers for a moment: do not wait for them.
runBench("bench:rooms", budgetMs, run, { cleanup: killRedis, exitAtOnce: true });
