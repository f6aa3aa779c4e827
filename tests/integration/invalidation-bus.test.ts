import { eq } from "drizzle-orm";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { roomMembers } from "../../db/schema.ts";
import { type Invalidation, redisBus } from "../../server/auth/session-cache.ts";
import { registerUser, waitFor } from "../helpers/factories.ts";
import { closeWhileResubscribing, startRedis, type TestRedis, unhandledDuring } from "../helpers/redis.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

let redis: TestRedis;
let admin: Redis;
beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
});
afterAll(async () => {
  admin.disconnect();
  await redis.stop();
});

/** Drops every subscribed connection, as a network cut or a Redis failover would. */
const cutSubscribers = () => admin.call("CLIENT", "KILL", "TYPE", "pubsub");

describe("the invalidation bus over Redis", () => {
  it("carries events between nodes and, after its subscription was cut, tells its own node to forget everything", async () => {
    const a = new Redis(redis.url, { lazyConnect: true });
    const b = new Redis(redis.url, { lazyConnect: true });
    await Promise.all([a.connect(), b.connect()]);
    const busA = await redisBus(a, () => {});
    const busB = await redisBus(b, () => {});
    const seen: Invalidation[] = [];
    busB.subscribe((e) => seen.push(e));
    try {
      busA.publish({ kind: "session", id: "s1" });
      await waitFor(() => seen.some((e) => e.kind === "session" && e.id === "s1"));
      expect(seen.some((e) => e.kind === "all")).toBe(false);

      await cutSubscribers();
      await waitFor(() => seen.some((e) => e.kind === "all"));
      // Resubscribed: events flow again.
      busA.publish({ kind: "room", id: "r1" });
      await waitFor(() => seen.some((e) => e.kind === "room" && e.id === "r1"));
    } finally {
      await Promise.all([busA.close(), busB.close()]);
      a.disconnect();
      b.disconnect();
    }
  });

  it("closed by its own node in the middle of resubscribing after a reconnect, leaves no unhandled rejection", async () => {
    const b = new Redis(redis.url, { lazyConnect: true });
    await b.connect();
    // The bus subscribes on a connection of its own, made with `duplicate`.
    const duplicate = b.duplicate.bind(b);
    let sub: Redis | undefined;
    b.duplicate = (options) => (sub = duplicate(options));
    const bus = await redisBus(b, () => {});
    const unhandled = await unhandledDuring(async () => {
      // After a reconnect ioredis resubscribes without waiting for the reply: a node that shuts down meanwhile
      // closes the connection under it.
      closeWhileResubscribing(sub as Redis);
      await cutSubscribers();
      await waitFor(() => sub?.status === "end");
    });
    await bus.close();
    b.disconnect();
    expect(unhandled).toEqual([]);
  });
});

describe("the cached standing of a room member", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({ redisUrl: redis.url });
  });
  afterAll(() => s.close());

  it("is read again after the bus may have lost an invalidation", async () => {
    const owner = await registerUser(s.url);
    const userId = owner.me.user.id;
    const room = await s.deps.rooms.create({ id: userId, role: "admin" }, { name: "r", topic: "", language: "en" });
    expect((await s.deps.rooms.cachedStanding(room.id, userId)).member.muted).toBe(false);
    // A change whose invalidation never arrived (written behind the service's back): the cache still answers.
    await s.deps.dbh.db.update(roomMembers).set({ muted: true }).where(eq(roomMembers.userId, userId));
    expect((await s.deps.rooms.cachedStanding(room.id, userId)).member.muted).toBe(false);

    await cutSubscribers();
    await waitFor(async () => (await s.deps.rooms.cachedStanding(room.id, userId)).member.muted);
  });
});
