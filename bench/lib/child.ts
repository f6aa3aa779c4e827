import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { SERVER_NODE_FLAGS } from "../../server/node-flags.ts";
import type { ChildMessage, Command, Fixtures, MemoryReport, ParentMessage } from "./server-child.ts";

const CHILD_SCRIPT = fileURLToPath(new URL("./server-child.ts", import.meta.url));
const live = new Set<ChildProcess>();

export interface ServerSpec {
  /** bare: a bare Hono app; bare-io: a bare Socket.IO server; doctorpy: the real composition */
  server: "bare" | "bare-io" | "bare-yjs" | "doctorpy";
  logLevel?: "silent" | "error" | "warn" | "info";
  /** runs the child with `--expose-gc`, so that `memory()` reads the heap after a full collection */
  exposeGc?: boolean;
  /** extra environment for the child (BENCH_DATABASE_URL, BENCH_REDIS_URL, BENCH_SECRETS: see server-child.ts) */
  env?: Record<string, string>;
  /** directory for a V8 CPU profile of the child (`--cpu-prof`), written when it exits */
  cpuProfDir?: string | undefined;
  /** the child exits by itself after this long, whatever happens to the parent */
  ttlMs: number;
}

export interface ServerChild {
  url: string;
  pid: number;
  /** CPU time (user + system) the server process has used so far, in microseconds */
  cpuMicros(timeoutMs?: number): Promise<number>;
  /** the child's memory after a forced GC (when started with `exposeGc`) */
  memory(): Promise<MemoryReport>;
  /** DoctorPy only: creates users with sessions and access tokens, and rooms, in bulk (see server-child.ts) */
  fixtures(users: number, roomSize: number, timeoutMs?: number): Promise<Fixtures>;
  /** asks the child to close and waits for it to exit (SIGKILL after `graceMs`) */
  stop(graceMs?: number): Promise<void>;
}

/**
 * CPU pinning: with two or more cores and `taskset` on the PATH, the server child runs on the last core and
 * this process (the load generator) on core 0, so that they never share a core. BENCH_PIN=0 turns it off.
 */
export const pinning = (() => {
  const cores = availableParallelism();
  if (process.env.BENCH_PIN === "0" || cores < 2 || process.platform !== "linux") return null;
  const probe = spawnSync("taskset", ["-V"], { stdio: "ignore" });
  if (probe.error || probe.status !== 0) return null;
  return { serverCpu: cores - 1, loadCpu: 0 };
})();

/** Pins this process (every thread of it) to the load generator's core; false when pinning is off or fails. */
export function pinSelf(): boolean {
  if (!pinning) return false;
  const r = spawnSync("taskset", ["-a", "-p", "-c", String(pinning.loadCpu), String(process.pid)], { stdio: "ignore" });
  return !r.error && r.status === 0;
}

/** Starts a server in its own process and resolves once it listens (its URL comes back over IPC). */
export function startServerChild(spec: ServerSpec, readyTimeoutMs = 60_000): Promise<ServerChild> {
  // The server's own V8 flags, as `npm start` passes them, for DoctorPy and the bare baselines alike.
  const nodeArgs = ["--import", "tsx", ...SERVER_NODE_FLAGS];
  if (spec.exposeGc) nodeArgs.push("--expose-gc");
  if (spec.cpuProfDir) nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${spec.cpuProfDir}`);
  // Extra Node/V8 flags for every server child, e.g. BENCH_NODE_ARGS="--trace-gc" (its lines go to stderr).
  if (process.env.BENCH_NODE_ARGS) nodeArgs.push(...process.env.BENCH_NODE_ARGS.split(/\s+/).filter(Boolean));
  nodeArgs.push(CHILD_SCRIPT);
  const [command, args] = pinning
    ? ["taskset", ["-c", String(pinning.serverCpu), process.execPath, ...nodeArgs]]
    : [process.execPath, nodeArgs];
  const child = spawn(command, args as string[], {
    // stdout goes to /dev/null: that is where the "info" variant's request logs end up (BENCH_CHILD_STDOUT=inherit
    // shows them, to debug a server that misbehaves under load).
    stdio: ["ignore", process.env.BENCH_CHILD_STDOUT === "inherit" ? "inherit" : "ignore", "inherit", "ipc"],
    env: {
      ...process.env,
      BENCH_SERVER: spec.server,
      BENCH_LOG_LEVEL: spec.logLevel ?? "silent",
      BENCH_CHILD_TTL_MS: String(spec.ttlMs),
      ...spec.env,
    },
  });
  live.add(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(() => live.delete(child));

  return new Promise<ServerChild>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${spec.server} server did not start within ${readyTimeoutMs} ms`));
    }, readyTimeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${spec.server} server exited before it was ready (code ${code}, signal ${signal})`));
    });
    child.on("message", (msg: ChildMessage) => {
      if (msg.type === "error") {
        clearTimeout(timer);
        reject(new Error(`${spec.server} server failed to start: ${msg.message}`));
        return;
      }
      if (msg.type !== "ready") return;
      clearTimeout(timer);
      const url = new URL(msg.url);
      if (url.hostname !== "127.0.0.1" && url.hostname !== "localhost" && url.hostname !== "[::1]") {
        child.kill("SIGKILL");
        reject(new Error(`refusing a non-loopback server address: ${msg.url}`));
        return;
      }
      let nextId = 0;
      const call = <T>(command: Command, timeoutMs: number): Promise<T> =>
        new Promise<T>((ok, fail) => {
          const id = ++nextId;
          const timer = setTimeout(() => {
            child.off("message", onMessage);
            fail(new Error(`${spec.server} server: ${command.kind} did not answer within ${timeoutMs} ms`));
          }, timeoutMs);
          const onMessage = (m: ChildMessage) => {
            if (m.type !== "reply" || m.id !== id) return;
            clearTimeout(timer);
            child.off("message", onMessage);
            if (m.ok) ok(m.data as T);
            else fail(new Error(`${spec.server} server: ${command.kind} failed: ${m.error}`));
          };
          child.on("message", onMessage);
          child.send({ type: "call", id, command } satisfies ParentMessage);
        });
      resolve({
        url: msg.url,
        pid: child.pid ?? -1,
        cpuMicros(timeoutMs = 5000) {
          return new Promise<number>((ok, fail) => {
            const timer = setTimeout(() => fail(new Error("the server did not report its CPU usage")), timeoutMs);
            const onMessage = (m: ChildMessage) => {
              if (m.type !== "usage") return;
              clearTimeout(timer);
              child.off("message", onMessage);
              ok(m.cpuMicros);
            };
            child.on("message", onMessage);
            child.send({ type: "usage" } satisfies ParentMessage);
          });
        },
        memory: () => call<MemoryReport>({ kind: "memory" }, 30_000),
        fixtures: (users, roomSize, timeoutMs = 300_000) =>
          call<Fixtures>({ kind: "fixtures", users, roomSize }, timeoutMs),
        async stop(graceMs = 10_000) {
          if (child.exitCode !== null || child.signalCode !== null) return;
          const kill = setTimeout(() => child.kill("SIGKILL"), graceMs);
          if (child.connected) child.send({ type: "stop" } satisfies ParentMessage);
          else child.kill("SIGTERM");
          await exited;
          clearTimeout(kill);
        },
      });
    });
  });
}

/** Kills every child still running (used on errors, signals and exit). */
export function killAllChildren(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  live.clear();
}

/**
 * Runs a benchmark's `run` within `budgetMs`: past the budget, on SIGINT/SIGTERM, on failure and at exit, every
 * server child (and whatever `cleanup` stops) is killed. `exitAtOnce` exits with the code as soon as `run` ends
 * instead of letting the event loop drain.
 */
export function runBench(
  name: string,
  budgetMs: number,
  run: () => Promise<number>,
  opts: { cleanup?: () => void; exitAtOnce?: boolean } = {},
): void {
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const stop = () => {
    killAllChildren();
    opts.cleanup?.();
  };
  const deadline = setTimeout(() => {
    log(`${name}: exceeded its time budget of ${Math.round(budgetMs / 1000)} s; stopping`);
    stop();
    process.exit(1);
  }, budgetMs);
  deadline.unref();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      stop();
      process.exit(130);
    });
  }
  process.once("exit", stop);
  run().then(
    (code) => {
      clearTimeout(deadline);
      stop();
      if (opts.exitAtOnce) process.exit(code);
      process.exitCode = code;
    },
    (err: unknown) => {
      log(`${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      stop();
      process.exit(1);
    },
  );
}
