import type { ChildProcess } from "node:child_process";
import { testConfig } from "../../tests/helpers/config.ts";
import { CLUSTER_DATABASE_URL, createTestDatabase } from "../../tests/helpers/postgres.ts";
import { startRedis } from "../../tests/helpers/redis.ts";
import { type ServerChild, type ServerSpec, startServerChild } from "./child.ts";

/** The PostgreSQL server where multi-node DoctorPy runs get a fresh database each. */
export const PG_ADMIN_URL = process.env.BENCH_PG_ADMIN_URL || CLUSTER_DATABASE_URL;

/** An integer setting from the environment, or `fallback`; anything else stops the benchmark with its name. */
export function intEnv(name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`${name} must be an integer in [${min}, ${max}], got ${raw}`);
  return n;
}

/** redis-server processes a benchmark started (killed by `killRedis`). */
export const redisProcs = new Set<ChildProcess>();

/** Kills every redis-server the benchmark started (for its exit and signal handlers). */
export function killRedis(): void {
  for (const p of redisProcs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  redisProcs.clear();
}

export interface Nodes {
  nodes: ServerChild[];
  stop(): Promise<void>;
}

/**
 * One server child, or `count` sharing a private redis-server (and, for DoctorPy, a fresh PostgreSQL database
 * and one set of secrets). `spec.env` receives the shared settings.
 */
export async function startNodes(spec: ServerSpec, count: number): Promise<Nodes> {
  const env = spec.env ?? {};
  spec.env = env;
  const nodes: ServerChild[] = [];
  let redis: Awaited<ReturnType<typeof startRedis>> | undefined;
  let db: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await db?.drop();
    if (redis) {
      await redis.stop();
      redisProcs.delete(redis.process);
    }
  };
  try {
    if (count > 1) {
      redis = await startRedis();
      redisProcs.add(redis.process);
      env.BENCH_REDIS_URL = redis.url;
      if (spec.server === "doctorpy") {
        db = await createTestDatabase(PG_ADMIN_URL);
        env.BENCH_DATABASE_URL = db.url;
        env.BENCH_SECRETS = JSON.stringify(testConfig().secrets);
      }
    }
    // The first node runs the migrations; the others start once it is up.
    for (let k = 0; k < count; k++) nodes.push(await startServerChild(spec));
    return { nodes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
