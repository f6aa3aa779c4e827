import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import { pino } from "pino";
import { Server } from "socket.io";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterConnections } from "../../server/realtime/io.ts";
import { waitFor } from "../helpers/factories.ts";
import { closeWhileResubscribing, startRedis, type TestRedis, unhandledDuring } from "../helpers/redis.ts";

let redis: TestRedis;
/** the node's main connection, which the adapter's are made from */
let base: Redis;
const silent = pino({ level: "silent" });
beforeAll(async () => {
  redis = await startRedis();
  base = new Redis(redis.url);
});
afterAll(async () => {
  base.disconnect();
  await redis.stop();
});

describe("the Socket.IO adapter's Redis connection", () => {
  it("refuses a publish after it closed without an unhandled rejection (a node shutting down stays up)", async () => {
    const { pub, sub } = await adapterConnections(base, silent);
    const io = new Server();
    io.adapter(createAdapter(pub, sub));
    const unhandled = await unhandledDuring(async () => {
      pub.disconnect();
      sub.disconnect();
      // Fire-and-forget publishes by the adapter, as when it answers another node during a shutdown.
      io.serverSideEmit("ping");
      await expect(pub.publish("direct", "x")).rejects.toThrow(/closed/i);
    });
    expect(unhandled).toEqual([]);
  });

  it("closed in the middle of resubscribing after a reconnect, leaves no unhandled rejection", async () => {
    const { pub, sub } = await adapterConnections(base, silent);
    const io = new Server();
    io.adapter(createAdapter(pub, sub));
    const admin = new Redis(redis.url);
    const unhandled = await unhandledDuring(async () => {
      // After a reconnect ioredis resubscribes without waiting for the replies: a connection closed meanwhile (a
      // node shutting down, Redis going away again) refuses them.
      closeWhileResubscribing(sub);
      await admin.call("CLIENT", "KILL", "TYPE", "pubsub");
      await waitFor(() => sub.status === "end");
    });
    pub.disconnect();
    admin.disconnect();
    expect(unhandled).toEqual([]);
  });
});
