/**
 * One server under test, in its own process (forked by bench/lib/child.ts). Which server comes from the
 * environment: BENCH_SERVER=bare (a bare Hono app, the HTTP baseline), bare-io (a bare Socket.IO server, the
 * realtime baseline), bare-yjs (a bare y-websocket server, the notebooks' baseline: bare-yjs.ts) or doctorpy (the
 * real composition with BENCH_LOG_LEVEL). DoctorPy uses in-memory PGlite, or BENCH_DATABASE_URL (PostgreSQL); the
 * realtime servers use the Redis adapter (bare-yjs: Redis pub/sub) when BENCH_REDIS_URL is set;
 * BENCH_SECRETS (JSON of `Config["secrets"]`) lets several DoctorPy nodes share their keys. BENCH_LLM_BASE_URL
 * (with BENCH_LLM_MODEL) is the tutor's model: DoctorPy's `tutor.llm`, and the bare Socket.IO server then answers
 * `tutor:ask` too (bench/lib/bare-tutor.ts).
 *
 * It listens on 127.0.0.1 port 0 and reports `{ type: "ready", url }` over IPC; it stops on `{ type: "stop" }`,
 * when the parent goes away, or after BENCH_CHILD_TTL_MS at the latest. `{ type: "usage" }` asks for the CPU time
 * it has used, so that the parent can work out the server's CPU cost per request. `{ type: "call" }` runs a
 * command and answers `{ type: "reply" }` with the same id: `memory` (forces a full GC when the child runs with
 * `--expose-gc`, then reads `process.memoryUsage()`), `fixtures` (DoctorPy only: creates users, sessions, access
 * tokens and rooms in bulk through the domain services).
 */
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { serve } from "@hono/node-server";
import { createAdapter } from "@socket.io/redis-adapter";
import { Hono } from "hono";
import { Redis } from "ioredis";
import { Server as IoServer } from "socket.io";
import { users } from "../../db/schema.ts";
import { EMAIL_AAD } from "../../server/auth/accounts.ts";
import { hashPassword } from "../../server/auth/passwords.ts";
import type { Config } from "../../server/config.ts";
import { createLogger } from "../../server/log.ts";
import { type RunningServer, startServer } from "../../server/server.ts";
import { SOCKET_MAX_PAYLOAD, SOCKET_PATH } from "../../shared/realtime.ts";
import { testConfig } from "../../tests/helpers/config.ts";
import { attachBareTutor, type BareLlm } from "./bare-tutor.ts";
import { startBareYjs } from "./bare-yjs.ts";

/** `process.memoryUsage()` after a forced GC (`gcForced` false when the child lacks `--expose-gc`). */
export interface MemoryReport {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  gcForced: boolean;
}

/** Users with a live session and an access token each, and rooms of consecutive users (`members` index `users`). */
export interface Fixtures {
  users: { id: string; token: string }[];
  rooms: { id: string; members: number[] }[];
  ms: number;
}

export type Command =
  | { kind: "memory" }
  /** `users` accounts; with `roomSize` > 0, consecutive groups of that many users share a room (the first owns it) */
  | { kind: "fixtures"; users: number; roomSize: number };

export type ChildMessage =
  | { type: "ready"; url: string }
  | { type: "error"; message: string }
  /** CPU time (user + system) this process has used so far, in microseconds */
  | { type: "usage"; cpuMicros: number }
  | { type: "reply"; id: number; ok: true; data: unknown }
  | { type: "reply"; id: number; ok: false; error: string };
export type ParentMessage = { type: "stop" } | { type: "usage" } | { type: "call"; id: number; command: Command };

const HOST = "127.0.0.1";

function send(msg: ChildMessage): void {
  process.send?.(msg);
}

interface Running {
  url: string;
  close(): Promise<void>;
  fixtures?(users: number, roomSize: number): Promise<Fixtures>;
}

async function startBare(): Promise<Running> {
  const app = new Hono();
  app.get("/hello", (c) => c.text("hello"));
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: HOST }, () => resolve(s));
    s.once("error", reject);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${HOST}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ("closeAllConnections" in server) server.closeAllConnections();
      }),
  };
}

/**
 * The realtime baseline: Socket.IO on a plain HTTP server with DoctorPy's path and message limit, no auth, no
 * validation, no persistence. Same event names and shapes as DoctorPy so that the load generator drives both
 * alike: `room:join` puts the socket in the room, `chat:send` broadcasts a ChatMessage-shaped object to the
 * room (sender included) and acknowledges it.
 */
async function startBareIo(redisUrl: string | undefined): Promise<Running> {
  const http = createServer();
  const io = new IoServer(http, { path: SOCKET_PATH, serveClient: false, maxHttpBufferSize: SOCKET_MAX_PAYLOAD });
  let pub: Redis | undefined;
  let sub: Redis | undefined;
  if (redisUrl) {
    pub = new Redis(redisUrl, { lazyConnect: true });
    sub = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect()]);
    io.adapter(createAdapter(pub, sub, { requestsTimeout: 3000 }));
  }
  const llm = benchLlm();
  if (llm) attachBareTutor(io, llm);
  let seq = 0;
  type AckFn = (reply: { ok: true; data: unknown }) => void;
  io.on("connection", (socket) => {
    const authorId = randomUUID();
    socket.on("room:join", (payload: { roomId: string }, ack?: AckFn) => {
      void socket.join(`room:${payload.roomId}`);
      if (typeof ack === "function") ack({ ok: true, data: { roomId: payload.roomId } });
    });
    socket.on("chat:send", (payload: { roomId: string; body: string }, ack?: AckFn) => {
      const message = {
        id: ++seq,
        roomId: payload.roomId,
        authorId,
        authorName: "Bench",
        body: payload.body,
        createdAt: new Date().toISOString(),
        editedAt: null,
        deletedAt: null,
      };
      io.to(`room:${payload.roomId}`).emit("chat:message", message);
      if (typeof ack === "function") ack({ ok: true, data: message });
    });
  });
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(0, HOST, () => resolve());
  });
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://${HOST}:${port}`,
    close: async () => {
      io.engine.close();
      await new Promise<void>((resolve) => io.close(() => resolve()));
      pub?.disconnect();
      sub?.disconnect();
    },
  };
}

const BENCH_PASSWORD = "bench-password-not-for-humans-7f3a";
let passwordHash: Promise<string> | undefined;

/**
 * Creates `n` users, a session and an access token for each, and rooms of `roomSize` consecutive users, through
 * the domain services. The one shortcut: the accounts are inserted in bulk sharing one real argon2 hash of the
 * same password (hashing each would take ~8 ms × n); sessions, tokens, rooms and memberships go through
 * SessionService.create, TokenService.issue, RoomService.create and RoomService.joinByCode.
 */
async function createFixtures(running: RunningServer, n: number, roomSize: number): Promise<Fixtures> {
  const started = performance.now();
  const { deps } = running;
  passwordHash ??= hashPassword(BENCH_PASSWORD);
  const hash = await passwordHash;
  const tag = randomUUID().slice(0, 8);
  const ids: string[] = [];
  for (let from = 0; from < n; from += 500) {
    const rows = [];
    for (let i = from; i < Math.min(n, from + 500); i++) {
      const email = `bench-${tag}-${i}@example.com`;
      rows.push({
        emailEnc: deps.secrets.keyring.encrypt(email, EMAIL_AAD),
        emailIndex: deps.accounts.emailIndex(email),
        displayName: `Bench ${i}`,
        passwordHash: hash,
        role: "learner" as const,
      });
    }
    const inserted = await deps.dbh.db.insert(users).values(rows).returning({ id: users.id });
    ids.push(...inserted.map((r) => r.id));
  }
  const out: Fixtures["users"] = new Array(n);
  const meta = { ip: "127.0.0.1", userAgent: "bench:rooms" };
  for (let from = 0; from < n; from += 25) {
    await Promise.all(
      ids.slice(from, from + 25).map(async (id, k) => {
        const { session } = await deps.sessions.create(id, meta);
        const { token } = await deps.tokens.issue({ userId: id, sessionId: session.id });
        out[from + k] = { id, token };
      }),
    );
  }
  const rooms: Fixtures["rooms"] = [];
  if (roomSize > 0) {
    for (let first = 0; first < n; first += roomSize) {
      const owner = ids[first] as string;
      const room = await deps.rooms.create(
        { id: owner, role: "learner" },
        { name: `bench ${first / roomSize}`, topic: "", language: "en" },
      );
      const members = [first];
      for (let i = first + 1; i < Math.min(n, first + roomSize); i++) {
        await deps.rooms.joinByCode(ids[i] as string, room.inviteCode as string);
        members.push(i);
      }
      rooms.push({ id: room.id, members });
    }
  }
  return { users: out, rooms, ms: performance.now() - started };
}

/** The tutor's model of bench/tutor.ts (BENCH_LLM_BASE_URL, BENCH_LLM_MODEL), if any. */
function benchLlm(): BareLlm | undefined {
  const baseUrl = process.env.BENCH_LLM_BASE_URL;
  return baseUrl ? { baseUrl, model: process.env.BENCH_LLM_MODEL || "bench-model" } : undefined;
}

async function startDoctorPy(logLevel: Config["logLevel"]): Promise<Running> {
  const secrets = process.env.BENCH_SECRETS ? (JSON.parse(process.env.BENCH_SECRETS) as Config["secrets"]) : undefined;
  const base = testConfig({
    host: HOST,
    port: 0,
    dataDir: "memory",
    databaseUrl: process.env.BENCH_DATABASE_URL || undefined,
    databasePoolSize: 10,
    redisUrl: process.env.BENCH_REDIS_URL || undefined,
    ...(secrets ? { secrets } : {}),
    // The server's own variable, to compare holds (the default is the product's).
    ...(process.env.WS_WRITE_HOLD_MS ? { wsWriteHoldMs: Number(process.env.WS_WRITE_HOLD_MS) } : {}),
    logLevel,
    rateLimits: {
      perIp: 10_000_000,
      perUser: 10_000_000,
      socketEventsPerUser: 10_000_000,
      chatPerRoom: 10_000_000,
      loginFailures: 5,
      loginFailuresPerIp: 1000,
      lockoutSec: 900,
    },
  });
  const llm = benchLlm();
  const config: Config = llm ? { ...base, tutor: { ...base.tutor, llm } } : base;
  // Same logger as server/main.ts: pino to stdout, which the parent points at /dev/null.
  const running = await startServer(config, createLogger(config.logLevel));
  if (process.env.BENCH_TRACE === "1") traceDoctorPy(running);
  return {
    url: running.url,
    close: () => running.close(2000),
    fixtures: (n, roomSize) => createFixtures(running, n, roomSize),
  };
}

/** Diagnostics on stderr, once a second: event-loop delay and chat batch sizes and times. */
function traceDoctorPy(running: RunningServer): void {
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  // Garbage collections longer than 5 ms, by kind (1 minor, 2 major, 4 incremental, 8 weak callbacks).
  new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      if (e.duration > 5)
        process.stderr.write(
          `trace: gc kind ${(e as { detail?: { kind?: number } }).detail?.kind} ${e.duration.toFixed(1)} ms\n`,
        );
  }).observe({ entryTypes: ["gc"] });
  // Notebook compactions (replayed in a worker thread that shares the server's core).
  const merger = (running.deps.notebooks.hub as unknown as { merger: { merge(u: Uint8Array[]): Promise<Uint8Array> } })
    .merger;
  const merge = merger.merge.bind(merger);
  merger.merge = async (updates) => {
    const t = performance.now();
    try {
      return await merge(updates);
    } finally {
      process.stderr.write(
        `trace: compaction merged ${updates.length} updates in ${(performance.now() - t).toFixed(1)} ms\n`,
      );
    }
  };
  const st = running.deps.dbh.statements;
  const insert = st.insertMessages.bind(st);
  let batches = 0;
  let rows = 0;
  let ms = 0;
  let maxMs = 0;
  st.insertMessages = async (b) => {
    const t = performance.now();
    try {
      return await insert(b);
    } finally {
      const d = performance.now() - t;
      batches++;
      if (d > 15) process.stderr.write(`trace: slow batch of ${b.length} rows: ${d.toFixed(1)} ms\n`);
      rows += b.length;
      ms += d;
      maxMs = Math.max(maxMs, d);
    }
  };
  setInterval(() => {
    process.stderr.write(
      `trace: loop delay p50 ${(h.percentile(50) / 1e6).toFixed(1)} p99 ${(h.percentile(99) / 1e6).toFixed(1)} max ${(h.max / 1e6).toFixed(1)} ms; ` +
        `${batches} batches, ${(rows / Math.max(1, batches)).toFixed(1)} rows/batch, ${(ms / Math.max(1, batches)).toFixed(2)} ms/batch, max ${maxMs.toFixed(1)} ms\n`,
    );
    h.reset();
    batches = rows = ms = maxMs = 0;
  }, 1000).unref();
}

async function memoryReport(): Promise<MemoryReport> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    // Twice, with a turn of the event loop in between, so that finalizers and weak callbacks have run.
    gc();
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  }
  const m = process.memoryUsage();
  return {
    rss: m.rss,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
    gcForced: gc !== undefined,
  };
}

async function runCommand(running: Running, command: Command): Promise<unknown> {
  if (command.kind === "memory") return memoryReport();
  if (command.kind === "fixtures") {
    if (!running.fixtures) throw new Error("this server has no accounts: fixtures need BENCH_SERVER=doctorpy");
    return running.fixtures(command.users, command.roomSize);
  }
  throw new Error(`unknown command ${(command as { kind: string }).kind}`);
}

async function main(): Promise<void> {
  if (!process.send) throw new Error("server-child must be forked with an IPC channel");
  const ttl = Number(process.env.BENCH_CHILD_TTL_MS ?? 600_000);
  setTimeout(() => {
    process.stderr.write(`bench server child: lifetime of ${ttl} ms exceeded, exiting\n`);
    process.exit(2);
  }, ttl).unref();

  const kind = process.env.BENCH_SERVER;
  const level = (process.env.BENCH_LOG_LEVEL ?? "silent") as Config["logLevel"];
  const running: Running | null =
    kind === "bare"
      ? await startBare()
      : kind === "bare-io"
        ? await startBareIo(process.env.BENCH_REDIS_URL || undefined)
        : kind === "bare-yjs"
          ? await startBareYjs(HOST, process.env.BENCH_REDIS_URL || undefined)
          : kind === "doctorpy"
            ? await startDoctorPy(level)
            : null;
  if (!running) throw new Error(`unknown BENCH_SERVER=${kind}`);

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(1), 5000);
    force.unref();
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("message", (msg: ParentMessage) => {
    if (msg?.type === "stop") stop();
    if (msg?.type === "usage") {
      const { user, system } = process.cpuUsage();
      send({ type: "usage", cpuMicros: user + system });
    }
    if (msg?.type === "call") {
      const { id } = msg;
      runCommand(running, msg.command).then(
        (data) => send({ type: "reply", id, ok: true, data }),
        (err: unknown) =>
          send({
            type: "reply",
            id,
            ok: false,
            error: err instanceof Error ? (err.stack ?? err.message) : String(err),
          }),
      );
    }
  });
  process.on("disconnect", stop);
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  send({ type: "ready", url: running.url });
}

main().catch((err: unknown) => {
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  send({ type: "error", message });
  process.stderr.write(`bench server child failed: ${message}\n`);
  process.exit(1);
});
