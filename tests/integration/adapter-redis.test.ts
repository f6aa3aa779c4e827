import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import pino from "pino";
import { Server } from "socket.io";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { quietPublish } from "../../server/realtime/io.ts";
import { startRedis, type TestRedis } from "../helpers/redis.ts";

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(() => redis.stop());

describe("the Socket.IO adapter's Redis connection", () => {
  it("refuses a publish after it closed without an unhandled rejection (a node shutting down stays up)", async () => {
    const pub = new Redis(redis.url, { lazyConnect: true });
    const sub = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect()]);
    quietPublish(pub, pino({ level: "silent" }));
    const io = new Server();
    io.adapter(createAdapter(pub, sub));
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      pub.disconnect();
      sub.disconnect();
      // Fire-and-forget publishes by the adapter, as when it answers another node during a shutdown.
      io.serverSideEmit("ping");
      await expect(pub.publish("direct", "x")).rejects.toThrow(/closed/i);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });
});
