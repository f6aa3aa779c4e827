import type { Config } from "../../server/config.ts";
import { testConfig } from "./config.ts";
import { CLUSTER_DATABASE_URL, createTestDatabase } from "./postgres.ts";
import { startRedis, type TestRedis } from "./redis.ts";
import { startServer, type TestServer } from "./server.ts";

export interface TestCluster {
  nodes: TestServer[];
  redis: TestRedis;
  databaseUrl: string;
  /** starts one more node on the same database, Redis and secrets */
  addNode(): Promise<TestServer>;
  close(): Promise<void>;
}

/**
 * N DoctorPy nodes on port 0, sharing a private redis-server (started on a free port), one fresh PostgreSQL
 * database and the same secrets, as real nodes share them through the environment. Every multi-node test
 * uses this.
 */
export async function startCluster(n: number, overrides: Partial<Config> = {}): Promise<TestCluster> {
  const [redis, db] = await Promise.all([startRedis(), createTestDatabase(CLUSTER_DATABASE_URL)]);
  const shared: Partial<Config> = {
    secrets: testConfig().secrets,
    ...overrides,
    databaseUrl: db.url,
    redisUrl: redis.url,
  };
  const nodes: TestServer[] = [];
  const addNode = async () => {
    const node = await startServer(shared);
    nodes.push(node);
    return node;
  };
  // The first node runs the migrations; the others start beside it.
  await addNode();
  await Promise.all(Array.from({ length: n - 1 }, addNode));
  return {
    nodes,
    redis,
    databaseUrl: db.url,
    addNode,
    async close() {
      await Promise.allSettled(nodes.map((node) => node.close(1000)));
      await db.drop();
      await redis.stop();
    },
  };
}
