import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROLE_PERMISSIONS } from "../../shared/permissions.ts";
import type { AccessToken, Me, SessionList } from "../../shared/schemas/auth.ts";
import type { Problem } from "../../shared/schemas/common.ts";
import { PASSWORD, registerUser, uniqueEmail, userWithRole, waitFor } from "../helpers/factories.ts";
import { Client } from "../helpers/http.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

const idleFor = (ms: number) => new Promise((r) => setTimeout(r, ms));

let server: TestServer;
let admin: Client;

beforeAll(async () => {
  server = await startServer({ session: { idleTimeoutSec: 3600, maxAgeSec: 24 * 3600, cacheTtlSec: 5 } });
  admin = (await registerUser(server.url, "First Admin")).client;
});
afterAll(() => server.close());

describe("register, login, logout, me", () => {
  it("makes the first account an admin and later ones learners", async () => {
    const me = await admin.get<Me>("/api/v1/auth/me");
    expect(me.body.user.role).toBe("admin");
    expect(me.body.permissions).toContain("users:manage");
    const learner = await registerUser(server.url);
    expect(learner.me.user.role).toBe("learner");
    expect(learner.me.permissions).toEqual([...ROLE_PERMISSIONS.learner]);
  });

  it("sets an httpOnly SameSite=Lax session cookie and answers me", async () => {
    const c = new Client(server.url);
    const email = uniqueEmail();
    const res = await c.post<Me>("/api/v1/auth/register", { email, password: PASSWORD, displayName: "Grace" });
    expect(res.status).toBe(201);
    const cookie = res.headers.get("set-cookie") ?? "";
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Lax/);
    expect(cookie).not.toMatch(/Secure/);
    const me = await c.get<Me>("/api/v1/auth/me");
    expect(me.status).toBe(200);
    expect(me.body.user.email).toBe(email);
    expect(me.body.via).toBe("cookie");
  });

  it("refuses a duplicate email, whatever its case", async () => {
    const u = await registerUser(server.url);
    const res = await new Client(server.url).post<Problem>("/api/v1/auth/register", {
      email: u.email.toUpperCase(),
      password: PASSWORD,
      displayName: "Copy",
    });
    expect(res.status).toBe(409);
    expect(res.body.code).toBe("conflict");
  });

  it("refuses passwords that contain the email or the name", async () => {
    const c = new Client(server.url);
    const res = await c.post<Problem>("/api/v1/auth/register", {
      email: "marguerite.yourcenar@example.com",
      password: "marguerite.yourcenar123",
      displayName: "Marguerite",
    });
    expect(res.status).toBe(400);
    expect(res.body.errors?.[0]?.path).toBe("body.password");
  });

  it("logs in, logs out, and the old cookie stops working", async () => {
    const u = await registerUser(server.url);
    const c = new Client(server.url);
    const bad = await c.post<Problem>("/api/v1/auth/login", { email: u.email, password: "wrong password!" });
    expect(bad.status).toBe(401);
    expect(bad.body.code).toBe("invalid_credentials");
    const ok = await c.post<Me>("/api/v1/auth/login", { email: u.email, password: PASSWORD });
    expect(ok.status).toBe(200);
    const oldCookie = c.cookie;
    expect((await c.post("/api/v1/auth/logout")).status).toBe(204);
    expect(c.cookie).toBeUndefined();
    const after = await c.get<Problem>("/api/v1/auth/me", { cookie: oldCookie as string });
    expect(after.status).toBe(401);
    expect(after.body.code).toBe("unauthenticated");
  });

  it("answers an unknown email exactly like a wrong password", async () => {
    const res = await new Client(server.url).post<Problem>("/api/v1/auth/login", {
      email: uniqueEmail("ghost"),
      password: PASSWORD,
    });
    expect(res.status).toBe(401);
    expect(res.body.code).toBe("invalid_credentials");
  });
});

describe("access tokens", () => {
  it("issues a JWT that works as a Bearer token, and dies with its session", async () => {
    const u = await registerUser(server.url);
    const t = await u.client.post<AccessToken>("/api/v1/auth/token");
    expect(t.status).toBe(200);
    const exp = new Date(t.body.expiresAt).getTime();
    expect(exp - Date.now()).toBeGreaterThan(200_000);
    expect(exp - Date.now()).toBeLessThanOrEqual(300_000);
    const script = new Client(server.url);
    script.bearer = t.body.token;
    const me = await script.get<Me>("/api/v1/auth/me");
    expect(me.status).toBe(200);
    expect(me.body.via).toBe("token");
    // Bearer requests need no Origin: they cannot be forged by a browser.
    expect((await script.post("/api/v1/auth/token")).status).toBe(200);
    await u.client.post("/api/v1/auth/logout");
    const after = await script.get<Problem>("/api/v1/auth/me");
    expect(after.status).toBe(401);
    expect(after.body.code).toBe("session_expired");
  });

  it("refuses tampered, foreign and malformed tokens", async () => {
    const u = await registerUser(server.url);
    const t = await u.client.post<AccessToken>("/api/v1/auth/token");
    const [h, p, s] = t.body.token.split(".");
    const script = new Client(server.url);
    for (const bad of [
      `${h}.${p}.${s?.slice(0, -2)}xx`,
      "not-a-jwt",
      `${h}.${Buffer.from("{}").toString("base64url")}.${s}`,
    ]) {
      script.bearer = bad;
      expect((await script.get("/api/v1/auth/me")).status).toBe(401);
    }
    const basic = await new Client(server.url).get("/api/v1/auth/me", { authorization: "Basic Zm9vOmJhcg==" });
    expect(basic.status).toBe(401);
  });

  it("expires tokens after their lifetime", async () => {
    // `exp` has a resolution of one second, so a 3 s token lives between 2 and 3 s: long enough to be used
    // once right away on a loaded machine, short enough to watch it expire.
    const short = await startServer({ tokenTtlSec: 3 });
    try {
      const u = await registerUser(short.url);
      const t = await u.client.post<AccessToken>("/api/v1/auth/token");
      const left = new Date(t.body.expiresAt).getTime() - Date.now();
      expect(left).toBeGreaterThan(1000);
      expect(left).toBeLessThanOrEqual(3000);
      const script = new Client(short.url);
      script.bearer = t.body.token;
      expect((await script.get("/api/v1/auth/me")).status).toBe(200);
      await waitFor(async () => (await script.get("/api/v1/auth/me")).status === 401, 8000, 200);
      expect(Date.now()).toBeGreaterThanOrEqual(new Date(t.body.expiresAt).getTime() - 50);
    } finally {
      await short.close();
    }
  });
});

describe("sessions", () => {
  it("lists my sessions and revokes one of them", async () => {
    const u = await registerUser(server.url);
    const other = new Client(server.url);
    await other.post("/api/v1/auth/login", { email: u.email, password: PASSWORD }, { "user-agent": "second-device" });
    const list = await u.client.get<SessionList>("/api/v1/auth/sessions");
    expect(list.body.items).toHaveLength(2);
    expect(list.body.items.filter((s) => s.current)).toHaveLength(1);
    const second = list.body.items.find((s) => s.userAgent === "second-device");
    expect(second?.current).toBe(false);
    expect((await u.client.delete(`/api/v1/auth/sessions/${second?.id}`)).status).toBe(204);
    expect((await other.get("/api/v1/auth/me")).status).toBe(401);
    expect((await u.client.get("/api/v1/auth/me")).status).toBe(200);
  });

  it("cannot revoke someone else's session", async () => {
    const a = await registerUser(server.url);
    const b = await registerUser(server.url);
    const bs = await b.client.get<SessionList>("/api/v1/auth/sessions");
    const res = await a.client.delete<Problem>(`/api/v1/auth/sessions/${bs.body.items[0]?.id}`);
    expect(res.status).toBe(404);
    expect((await b.client.get("/api/v1/auth/me")).status).toBe(200);
  });

  it("expires a session after its idle timeout", async () => {
    const idle = await startServer({ session: { idleTimeoutSec: 1, maxAgeSec: 3600, cacheTtlSec: 5 } });
    try {
      const u = await registerUser(idle.url);
      // Use keeps it alive past the idle timeout...
      const until = Date.now() + 1600;
      while (Date.now() < until) {
        expect((await u.client.get("/api/v1/auth/me")).status).toBe(200);
        await idleFor(250);
      }
      // ...and idleness (the behaviour under test, so a real wait) ends it.
      await idleFor(1200);
      expect((await u.client.get("/api/v1/auth/me")).status).toBe(401);
    } finally {
      await idle.close();
    }
  });
});

describe("password change", () => {
  it("needs the current password, revokes every session and starts a fresh one", async () => {
    const u = await registerUser(server.url);
    const laptop = new Client(server.url);
    await laptop.post("/api/v1/auth/login", { email: u.email, password: PASSWORD });
    const token = (await laptop.post<AccessToken>("/api/v1/auth/token")).body.token;
    const wrong = await u.client.post<Problem>("/api/v1/auth/password", {
      currentPassword: "nope nope nope",
      newPassword: "a brand new passphrase",
    });
    expect(wrong.status).toBe(401);
    const ok = await u.client.post("/api/v1/auth/password", {
      currentPassword: PASSWORD,
      newPassword: "a brand new passphrase",
    });
    expect(ok.status).toBe(204);
    expect((await u.client.get("/api/v1/auth/me")).status).toBe(200);
    expect((await laptop.get("/api/v1/auth/me")).status).toBe(401);
    const script = new Client(server.url);
    script.bearer = token;
    expect((await script.get("/api/v1/auth/me")).status).toBe(401);
    const c = new Client(server.url);
    expect((await c.post("/api/v1/auth/login", { email: u.email, password: PASSWORD })).status).toBe(401);
    expect((await c.post("/api/v1/auth/login", { email: u.email, password: "a brand new passphrase" })).status).toBe(
      200,
    );
  });
});

describe("roles and disabled accounts", () => {
  it("applies a role change to the next request", async () => {
    const u = await userWithRole(server.url, admin, "teacher");
    expect((await u.client.get<Me>("/api/v1/auth/me")).body.user.role).toBe("teacher");
    expect((await u.client.get("/api/v1/admin/users")).status).toBe(403);
    await admin.patch(`/api/v1/admin/users/${u.me.user.id}`, { role: "admin" });
    expect((await u.client.get("/api/v1/admin/users")).status).toBe(200);
  });

  it("locks a disabled user out at once: cookie, tokens and login", async () => {
    const u = await registerUser(server.url);
    const token = (await u.client.post<AccessToken>("/api/v1/auth/token")).body.token;
    const script = new Client(server.url);
    script.bearer = token;
    expect((await admin.patch(`/api/v1/admin/users/${u.me.user.id}`, { disabled: true })).status).toBe(200);
    expect((await u.client.get("/api/v1/auth/me")).status).toBe(401);
    expect((await script.get("/api/v1/auth/me")).status).toBe(401);
    const login = await new Client(server.url).post<Problem>("/api/v1/auth/login", {
      email: u.email,
      password: PASSWORD,
    });
    expect(login.status).toBe(403);
    expect(login.body.code).toBe("account_disabled");
    await admin.patch(`/api/v1/admin/users/${u.me.user.id}`, { disabled: false });
    expect(
      (await new Client(server.url).post("/api/v1/auth/login", { email: u.email, password: PASSWORD })).status,
    ).toBe(200);
  });

  it("makes ADMIN_EMAIL an admin on registration", async () => {
    const s = await startServer({ adminEmail: "boss@example.com" });
    try {
      await registerUser(s.url);
      const c = new Client(s.url);
      const res = await c.post<Me>("/api/v1/auth/register", {
        email: "Boss@Example.com",
        password: PASSWORD,
        displayName: "Boss",
      });
      expect(res.body.user.role).toBe("admin");
    } finally {
      await s.close();
    }
  });
});
