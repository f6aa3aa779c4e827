import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccessToken, Me } from "../../shared/schemas/auth.ts";
import { testConfig } from "../helpers/config.ts";
import { PASSWORD, registerUser, waitFor } from "../helpers/factories.ts";
import { Client } from "../helpers/http.ts";
import { CLUSTER_DATABASE_URL, createTestDatabase } from "../helpers/postgres.ts";
import { startRedis, type TestRedis } from "../helpers/redis.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

// Two nodes on one PostgreSQL database and one Redis. Sessions are cached for 60 s on each node, so a 401 on
// node B within a second of a change on node A can only come from the cross-node invalidation.
let redis: TestRedis;
let db: { url: string; drop(): Promise<void> };
let a: TestServer;
let b: TestServer;
let admin: Client;

beforeAll(async () => {
  [redis, db] = await Promise.all([startRedis(), createTestDatabase(CLUSTER_DATABASE_URL)]);
  // Both nodes share their keys, as real nodes do through the environment.
  const shared = testConfig().secrets;
  const node = () =>
    startServer({
      databaseUrl: db.url,
      redisUrl: redis.url,
      secrets: shared,
      session: { idleTimeoutSec: 3600, maxAgeSec: 86_400, cacheTtlSec: 60 },
    });
  a = await node();
  b = await node();
  admin = (await registerUser(a.url, "Admin")).client;
});
afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await db?.drop();
  await redis?.stop();
});

/** The same cookie, spoken to another node. */
function on(node: TestServer, c: Client): Client {
  const other = new Client(node.url);
  other.cookie = c.cookie;
  other.bearer = c.bearer;
  return other;
}

const onB = (c: Client) => on(b, c);
const fastly = (check: () => Promise<boolean>) => waitFor(check, 1500, 20);

describe("session changes reach every node at once", () => {
  it("logout on A ends the session on B", async () => {
    const u = await registerUser(a.url);
    expect((await onB(u.client).get("/api/v1/auth/me")).status).toBe(200);
    const cookie = u.client.cookie;
    await u.client.post("/api/v1/auth/logout");
    const stale = new Client(b.url);
    stale.cookie = cookie;
    await fastly(async () => (await stale.get("/api/v1/auth/me")).status === 401);
  });

  it("disabling a user on A stops their cookie and token on B", async () => {
    const u = await registerUser(a.url);
    const token = (await u.client.post<AccessToken>("/api/v1/auth/token")).body.token;
    const script = new Client(b.url);
    script.bearer = token;
    expect((await script.get("/api/v1/auth/me")).status).toBe(200);
    expect((await onB(u.client).get("/api/v1/auth/me")).status).toBe(200);
    expect((await admin.patch(`/api/v1/admin/users/${u.me.user.id}`, { disabled: true })).status).toBe(200);
    await fastly(async () => (await script.get("/api/v1/auth/me")).status === 401);
    await fastly(async () => (await onB(u.client).get("/api/v1/auth/me")).status === 401);
  });

  it("a role change on A applies to the next request on B", async () => {
    const u = await registerUser(a.url);
    expect((await onB(u.client).get<Me>("/api/v1/auth/me")).body.user.role).toBe("learner");
    await admin.patch(`/api/v1/admin/users/${u.me.user.id}`, { role: "teacher" });
    await fastly(async () => (await onB(u.client).get<Me>("/api/v1/auth/me")).body.user.role === "teacher");
  });

  it("a password change on B ends the other sessions on A", async () => {
    const u = await registerUser(a.url);
    const laptop = new Client(a.url);
    await laptop.post("/api/v1/auth/login", { email: u.email, password: PASSWORD });
    expect((await laptop.get("/api/v1/auth/me")).status).toBe(200);
    const res = await onB(u.client).post("/api/v1/auth/password", {
      currentPassword: PASSWORD,
      newPassword: "another long passphrase",
    });
    expect(res.status).toBe(204);
    await fastly(async () => (await laptop.get("/api/v1/auth/me")).status === 401);
  });
});
