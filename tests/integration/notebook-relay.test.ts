import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../server/log.ts";
import { type NotebookRelay, type RelayMessage, redisRelay } from "../../server/notebooks/relay.ts";
import { waitFor } from "../helpers/factories.ts";
import { startRedis, type TestRedis } from "../helpers/redis.ts";

let redis: TestRedis;
let client: Redis;
const relays: NotebookRelay[] = [];
const connections: Redis[] = [];

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
  client.on("error", () => {}); // Redis is stopped on purpose below
});
afterAll(async () => {
  await Promise.all(relays.map((r) => r.close()));
  for (const c of [...connections, client]) c.disconnect();
  await redis.stop();
});

function relay(node: string): NotebookRelay {
  const connection = client.duplicate();
  connection.on("error", () => {});
  connections.push(connection);
  const r = redisRelay(connection, createLogger("silent"), node);
  relays.push(r);
  return r;
}

/** How many times Redis ran a command since it started (INFO commandstats). */
async function calls(command: string): Promise<number> {
  const info = await client.info("commandstats");
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
}

describe("the notebook relay (Redis Streams)", () => {
  it("carries one node's updates to another, in order, and not back to their sender", async () => {
    const a = relay("node-a");
    const b = relay("node-b");
    const atA: RelayMessage[] = [];
    const atB: RelayMessage[] = [];
    a.onMessage((m) => atA.push(m));
    b.onMessage((m) => atB.push(m));
    await Promise.all([a.watch("nb-order"), b.watch("nb-order")]);
    for (let i = 0; i < 20; i++) a.publish("nb-order", "u", Uint8Array.of(i));
    await waitFor(() => atB.length === 20);
    expect(atB.map((m) => m.data[0])).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(atB.every((m) => m.node === "node-a" && m.kind === "u" && m.notebookId === "nb-order")).toBe(true);
    expect(atA).toEqual([]);
  });

  it("gives a stream a TTL with its first update and renews it once a minute, not with every update", async () => {
    const a = relay("node-ttl");
    await a.watch("nb-ttl");
    const before = await calls("pexpire");
    for (let i = 0; i < 50; i++) a.publish("nb-ttl", "u", Uint8Array.of(i));
    await waitFor(async () => (await client.xlen("dp:nb:nb-ttl")) === 50);
    await waitFor(async () => (await client.pttl("dp:nb:nb-ttl")) > 0);
    const ttl = await client.pttl("dp:nb:nb-ttl");
    expect(ttl).toBeGreaterThan(3_500_000);
    expect(ttl).toBeLessThanOrEqual(3_600_000);
    expect((await calls("pexpire")) - before).toBe(1);
  });

  it("sets the TTL again on a stream that a restarted Redis lost", async () => {
    const a = relay("node-restart");
    let gaps = 0;
    a.onGap(() => gaps++);
    await a.watch("nb-restart");
    a.publish("nb-restart", "u", Uint8Array.of(1));
    await waitFor(async () => (await client.pttl("dp:nb:nb-restart")) > 0);
    await redis.restart();
    // The reader is back (it reports the gap) before the next update is published.
    await waitFor(() => gaps >= 1, 10_000);
    a.publish("nb-restart", "u", Uint8Array.of(2));
    await waitFor(async () => (await client.xlen("dp:nb:nb-restart").catch(() => 0)) === 1, 10_000);
    await waitFor(async () => (await client.pttl("dp:nb:nb-restart")) > 0);
  });

  it("starts while Redis is unreachable, and relays once it is back", async () => {
    await redis.stop();
    const a = relay("node-late-a");
    const b = relay("node-late-b");
    const atB: RelayMessage[] = [];
    b.onMessage((m) => atB.push(m));
    const watching = Promise.all([a.watch("nb-late"), b.watch("nb-late")]);
    await new Promise((resolve) => setTimeout(resolve, 500));
    await redis.start();
    await watching;
    a.publish("nb-late", "u", Uint8Array.of(7));
    await waitFor(() => atB.length === 1, 10_000);
    expect(atB[0]?.data[0]).toBe(7);
  });

  it("closes at once while Redis is unreachable", async () => {
    await redis.stop();
    try {
      const a = relay("node-down");
      await new Promise((resolve) => setTimeout(resolve, 300));
      const started = Date.now();
      await a.close();
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      await redis.start();
    }
  });
});
