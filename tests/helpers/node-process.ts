import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { formatKeyList } from "../../server/crypto/keyring.ts";
import { waitFor } from "./factories.ts";
import { CLUSTER_DATABASE_URL, createTestDatabase } from "./postgres.ts";
import { startRedis, type TestRedis } from "./redis.ts";

/** A DoctorPy node running `server/main.ts` in a child process: it can really die (SIGKILL included). */
export interface NodeProcess {
  url: string;
  pid: number;
  /** sends `signal` (SIGTERM by default); a no-op once the process has exited */
  kill(signal?: NodeJS.Signals): void;
  /** the exit code, or null when a signal ended the process */
  exited: Promise<number | null>;
  /** everything the process wrote so far, stdout then stderr */
  logs(): string;
}

/** Every child still running, so that none outlives the test run, whatever ends it. */
const live = new Set<ChildProcess>();
let guarded = false;

function killAllNow(): void {
  for (const child of live) child.kill("SIGKILL");
  live.clear();
}

function guardExit(): void {
  if (guarded) return;
  guarded = true;
  process.once("exit", killAllNow);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = () => {
      killAllNow();
      // Keep the default behaviour (die of the signal) unless someone else handles it.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.once(signal, onSignal);
  }
}

/**
 * Runs before main.ts in the child: when the parent goes (even SIGKILLed, when no handler of ours can run), the
 * child's stdin pipe ends and the child exits at once. Nothing is read from stdin otherwise.
 */
const ORPHAN_GUARD = `data:text/javascript,${encodeURIComponent(
  'process.stdin.on("end",()=>process.exit(1));process.stdin.on("error",()=>process.exit(1));process.stdin.resume();',
)}`;

/**
 * Starts `server/main.ts` as its own process on port 0 (loopback, JSON logs at info level, NODE_ENV=test) with
 * `env` on top (DATABASE_URL, REDIS_URL, the secrets...), and resolves once it logs the URL it listens on.
 */
export async function spawnNode(env: Record<string, string>): Promise<NodeProcess> {
  guardExit();
  const child = spawn(process.execPath, ["--import", "tsx", "--import", ORPHAN_GUARD, "server/main.ts"], {
    env: {
      PATH: process.env.PATH,
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      NODE_ENV: "test",
      DATA_DIR: "memory",
      ...env,
    },
    stdio: ["pipe", "pipe", "pipe"],
  });
  live.add(child);
  let out = "";
  let err = "";
  child.stdout?.on("data", (d) => (out += d));
  child.stderr?.on("data", (d) => (err += d));
  // The guard's pipe: closed by the OS when this process goes. Writing nothing, ignoring its errors.
  child.stdin?.on("error", () => {});
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      live.delete(child);
      resolve(code);
    }),
  );
  const logs = () => (err ? `${out}${err}` : out);
  let gone = false;
  void exited.then(() => (gone = true));
  const kill = (signal: NodeJS.Signals = "SIGTERM") => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  try {
    const url = await waitFor(() => {
      if (gone) throw new Error("exited");
      return /"url":"([^"]+)"/.exec(out)?.[1];
    }, 30_000);
    return { url, pid: child.pid as number, kill, exited, logs };
  } catch (e) {
    kill("SIGKILL");
    await exited;
    throw new Error(`node did not start (${(e as Error).message}):\n${logs()}`);
  }
}

/** Stops a node: SIGTERM, then SIGKILL if it is still there after `graceMs`. */
export async function stopNode(node: NodeProcess, graceMs = 5000): Promise<number | null> {
  node.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), graceMs);
  });
  const first = await Promise.race([node.exited, late]);
  clearTimeout(timer);
  if (first !== "late") return first;
  node.kill("SIGKILL");
  return node.exited;
}

/** One secret set for a whole cluster, as real nodes share it through the environment. */
export function clusterSecrets(): Record<string, string> {
  return {
    JWT_SECRET: randomBytes(32).toString("base64url"),
    ENCRYPTION_KEYS: formatKeyList([{ id: "t1", key: randomBytes(32) }]),
    BLIND_INDEX_KEY: randomBytes(32).toString("base64url"),
  };
}

export interface ProcessCluster {
  nodes: NodeProcess[];
  redis: TestRedis;
  databaseUrl: string;
  /** the environment every node gets (database, Redis, secrets and the caller's extras) */
  env: Record<string, string>;
  /** starts one more node process on the same database, Redis and secrets */
  addNode(): Promise<NodeProcess>;
  /** kills every node (SIGTERM, SIGKILL after 5 s), drops the database, stops Redis */
  close(): Promise<void>;
}

/**
 * N DoctorPy nodes as real processes (`server/main.ts`), sharing a private redis-server, one fresh PostgreSQL
 * database and the same secrets. The in-process `startCluster` is faster; this one is for nodes that must die.
 */
export async function startProcessCluster(n: number, extraEnv: Record<string, string> = {}): Promise<ProcessCluster> {
  const [redis, db] = await Promise.all([startRedis(), createTestDatabase(CLUSTER_DATABASE_URL)]);
  const env = { ...clusterSecrets(), ...extraEnv, DATABASE_URL: db.url, REDIS_URL: redis.url };
  const nodes: NodeProcess[] = [];
  const addNode = async () => {
    const node = await spawnNode(env);
    nodes.push(node);
    return node;
  };
  const close = async () => {
    await Promise.allSettled(nodes.map((node) => stopNode(node)));
    await db.drop().catch(() => {});
    await redis.stop();
  };
  // The first node runs the migrations; the others start beside it.
  const first = await Promise.allSettled([addNode()]);
  const rest = first[0]?.status === "fulfilled" ? await Promise.allSettled(Array.from({ length: n - 1 }, addNode)) : [];
  const failed = [...first, ...rest].find((r) => r.status === "rejected");
  if (failed) {
    await close();
    throw failed.reason;
  }
  return { nodes, redis, databaseUrl: db.url, env, addNode, close };
}
