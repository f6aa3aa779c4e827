import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RateLimitConfig } from "../../server/config.ts";
import { createLogger } from "../../server/log.ts";
import { startServer as start } from "../../server/server.ts";
import type { AccessToken, Me } from "../../shared/schemas/auth.ts";
import type { Problem } from "../../shared/schemas/common.ts";
import { testConfig } from "../helpers/config.ts";
import { PASSWORD, registerUser, uniqueEmail, waitFor } from "../helpers/factories.ts";
import { Client, type Reply } from "../helpers/http.ts";
import { startRedis, type TestRedis } from "../helpers/redis.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

const WRONG = "definitely not the password";
const generous: RateLimitConfig = {
  perIp: 100_000,
  perUser: 100_000,
  socketEventsPerUser: 100_000,
  chatPerRoom: 100_000,
  loginFailures: 5,
  loginFailuresPerIp: 1000,
  lockoutSec: 900,
};
const limits = (overrides: Partial<RateLimitConfig>): RateLimitConfig => ({ ...generous, ...overrides });

function expectProblem(res: Reply<Problem>, status: number, code: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(res.body.code).toBe(code);
  expect(res.body.status).toBe(status);
  expect(res.body.requestId).toBeTruthy();
  expect(res.body.requestId).toBe(res.headers.get("x-request-id"));
}

const login = (c: Client, email: string, password: string, headers?: Record<string, string>) =>
  c.post<Problem>("/api/v1/auth/login", { email, password }, headers);

/** A raw request with exactly the headers given (the Client would add Origin on unsafe methods). */
async function raw(url: string, init: RequestInit): Promise<Reply<Problem>> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : null) as Problem };
}

const allowed = "https://app.example";
let s: TestServer;
let nextIp = 1;
/** The servers trust X-Forwarded-For, so that each test can act from IPs of its own. */
const freshIp = () => ({ "x-forwarded-for": `198.51.100.${nextIp++}` });

beforeAll(async () => {
  s = await startServer({
    trustProxy: true,
    corsOrigins: [allowed],
    bodyLimit: 1024,
    rateLimits: limits({ loginFailures: 3, loginFailuresPerIp: 5, lockoutSec: 2 }),
  });
  await registerUser(s.url, "First Admin");
});
afterAll(() => s?.close());

describe("login brute-force protection", () => {
  it("locks an account out after N consecutive failures, even for the right password", async () => {
    const u = await registerUser(s.url);
    const c = new Client(s.url);
    const ip = freshIp();
    for (let i = 0; i < 3; i++) expectProblem(await login(c, u.email, WRONG, ip), 401, "invalid_credentials");
    const locked = await login(c, u.email, PASSWORD, ip);
    expectProblem(locked, 429, "locked_out");
    const retryAfter = Number(locked.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(2);
    expect(locked.body.retryAfter).toBe(retryAfter);
    expect(c.cookie).toBeUndefined();
    // The lockout is per account and IP: another account from that IP, or this account elsewhere, log in.
    const other = await registerUser(s.url);
    expect((await login(new Client(s.url), other.email, PASSWORD, ip)).status).toBe(200);
    expect((await login(new Client(s.url), u.email, PASSWORD, freshIp())).status).toBe(200);
  });

  it("resets the consecutive-failure counter on a successful login", async () => {
    const u = await registerUser(s.url);
    const c = new Client(s.url);
    const ip = freshIp();
    for (let i = 0; i < 2; i++) expect((await login(c, u.email, WRONG, ip)).status).toBe(401);
    expect((await login(c, u.email, PASSWORD, ip)).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await login(c, u.email, WRONG, ip)).status).toBe(401);
    expect((await login(c, u.email, PASSWORD, ip)).status).toBe(200);
  });

  it("lets the account in again once the lockout has passed", async () => {
    const u = await registerUser(s.url);
    const c = new Client(s.url);
    const ip = freshIp();
    for (let i = 0; i < 3; i++) await login(c, u.email, WRONG, ip);
    const lockedAt = Date.now();
    expect((await login(c, u.email, PASSWORD, ip)).status).toBe(429);
    // The passing of time is the behaviour under test: poll until the 2 s lockout ends.
    await waitFor(async () => (await login(c, u.email, PASSWORD, ip)).status === 200, 6000, 200);
    expect(Date.now() - lockedAt).toBeGreaterThanOrEqual(1000);
    expect((await c.get<Me>("/api/v1/auth/me")).body.user.email).toBe(u.email);
  });

  it("locks an IP out after too many failures across accounts", async () => {
    const victim = await registerUser(s.url);
    const c = new Client(s.url);
    const ip = freshIp();
    for (let i = 0; i < 5; i++) {
      expectProblem(await login(c, uniqueEmail("spray"), WRONG, ip), 401, "invalid_credentials");
    }
    const res = await login(c, victim.email, PASSWORD, ip);
    expectProblem(res, 429, "locked_out");
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(res.body.retryAfter).toBe(Number(res.headers.get("retry-after")));
    expect((await login(c, victim.email, PASSWORD, freshIp())).status).toBe(200);
  });
});

describe("API rate limits (memory store)", () => {
  let limited: TestServer;
  beforeAll(async () => {
    limited = await startServer({ trustProxy: true, rateLimits: limits({ perIp: 5, perUser: 3 }) });
  });
  afterAll(() => limited?.close());

  it("sends RateLimit headers and refuses the request over the per-IP limit", async () => {
    const c = new Client(limited.url);
    const ip = freshIp();
    for (let i = 1; i <= 5; i++) {
      const res = await c.get("/api/v1/openapi.json", ip);
      expect(res.status).toBe(200);
      expect(res.headers.get("ratelimit-limit")).toBe("5");
      expect(res.headers.get("ratelimit-remaining")).toBe(String(5 - i));
      const reset = Number(res.headers.get("ratelimit-reset"));
      expect(reset).toBeGreaterThanOrEqual(1);
      expect(reset).toBeLessThanOrEqual(60);
    }
    const refused = await c.get<Problem>("/api/v1/openapi.json", ip);
    expectProblem(refused, 429, "rate_limited");
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(refused.headers.get("ratelimit-remaining")).toBe("0");
    expect(refused.body.retryAfter).toBe(Number(refused.headers.get("retry-after")));
    // Any API route is counted, authenticated or not; probes outside /api are not; other IPs are not.
    expect((await c.post("/api/v1/auth/login", { email: uniqueEmail(), password: WRONG }, ip)).status).toBe(429);
    expect((await c.get("/healthz", ip)).status).toBe(200);
    expect((await c.get("/api/v1/openapi.json", freshIp())).status).toBe(200);
  });

  it("applies the per-user limit to an authenticated user, whatever their IP", async () => {
    const u = await registerUser(limited.url);
    const ips: Record<string, string>[] = [];
    for (let i = 1; i <= 3; i++) {
      const ip = freshIp();
      ips.push(ip);
      const res = await u.client.get("/api/v1/auth/me", ip);
      expect(res.status).toBe(200);
      // The most constrained limiter's headers win.
      expect(res.headers.get("ratelimit-limit")).toBe("3");
      expect(res.headers.get("ratelimit-remaining")).toBe(String(3 - i));
    }
    // A fourth IP has plenty of its own budget left, but the user has none.
    const refused = await u.client.get<Problem>("/api/v1/auth/me", freshIp());
    expectProblem(refused, 429, "rate_limited");
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect((await u.client.post("/api/v1/auth/token", undefined, freshIp())).status).toBe(429);
    // Another user, or anonymous calls, from the very same IP: unaffected.
    const other = await registerUser(limited.url);
    expect((await other.client.get("/api/v1/auth/me", ips[0])).status).toBe(200);
    const anon = await new Client(limited.url).get("/api/v1/openapi.json", ips[1]);
    expect(anon.status).toBe(200);
    expect(anon.headers.get("ratelimit-limit")).toBe("5");
  });
});

describe("rate limits with the Redis store, shared by two servers", () => {
  let redis: TestRedis;
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    redis = await startRedis();
    const secrets = testConfig().secrets; // same blind-index key: the same account has the same limiter key
    const rateLimits = limits({ perIp: 6, loginFailures: 3, lockoutSec: 60 });
    [a, b] = await Promise.all([
      startServer({ redisUrl: redis.url, trustProxy: true, rateLimits, secrets }),
      startServer({ redisUrl: redis.url, trustProxy: true, rateLimits, secrets }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await redis?.stop();
  });

  it("shares the per-IP counter: the total allowed across both servers is the limit", async () => {
    const ip = freshIp();
    const ca = new Client(a.url);
    const cb = new Client(b.url);
    const results: Reply[] = [];
    for (let i = 0; i < 10; i++) results.push(await (i % 2 === 0 ? ca : cb).get("/api/v1/openapi.json", ip));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200, 429, 429, 429, 429]);
    expect(results.slice(0, 6).map((r) => r.headers.get("ratelimit-remaining"))).toEqual([
      "5",
      "4",
      "3",
      "2",
      "1",
      "0",
    ]);
    expect(results[6]?.headers.get("retry-after")).toBeTruthy();
    // In parallel too: a fresh IP gets exactly `perIp` answers that are not 429.
    const burstIp = freshIp();
    const burst = await Promise.all(
      Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? ca : cb).get("/api/v1/openapi.json", burstIp)),
    );
    expect(burst.filter((r) => r.status === 200)).toHaveLength(6);
    expect(burst.filter((r) => r.status === 429)).toHaveLength(10);
    // Another IP is unaffected.
    expect((await ca.get("/api/v1/openapi.json", freshIp())).status).toBe(200);
  });

  it("shares login lockouts across servers", async () => {
    const ip = freshIp();
    const u = await registerUser(b.url);
    const ca = new Client(a.url);
    // Failures on server a (where the account does not even exist)...
    for (let i = 0; i < 3; i++) expect((await login(ca, u.email, WRONG, ip)).status).toBe(401);
    // ...lock the account out on server b, from that IP.
    const locked = await login(new Client(b.url), u.email, PASSWORD, ip);
    expectProblem(locked, 429, "locked_out");
    expect(Number(locked.headers.get("retry-after"))).toBeGreaterThan(50);
    expect((await login(new Client(b.url), u.email, PASSWORD, freshIp())).status).toBe(200);
  });

  it("reports Redis in /readyz, and 503 once Redis is gone, while limits hold per node", async () => {
    const ready = await new Client(a.url).get<{ status: string; redis: string }>("/readyz");
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ status: "ready", redis: "up" });
    await redis.stop();
    const down = await waitFor(async () => {
      const res = await new Client(a.url).get<Problem>("/readyz");
      return res.status === 503 ? res : undefined;
    }, 10_000);
    expectProblem(down, 503, "unavailable");
    await waitFor(async () => (await new Client(b.url).get("/readyz")).status === 503, 10_000);
    // The API stays up: each node falls back to counters of its own, so one IP gets `perIp` answers per node.
    const ip = freshIp();
    for (const server of [a, b]) {
      const c = new Client(server.url);
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++) {
        const res = await c.get("/api/v1/openapi.json", ip);
        statuses.push(res.status);
        if (i === 0) expect(res.headers.get("ratelimit-limit")).toBe("6");
      }
      expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429]);
    }
  });
});

describe("CSRF and CORS", () => {
  let cookie: string;
  beforeAll(async () => {
    cookie = (await registerUser(s.url)).client.cookie as string;
  });

  const tokenWith = (headers: Record<string, string>) =>
    raw(`${s.url}/api/v1/auth/token`, { method: "POST", headers: { cookie, ...headers } });

  it("refuses cookie-authenticated cross-site requests", async () => {
    const evil = await tokenWith({ origin: "https://evil.example" });
    expectProblem(evil, 403, "csrf");
    expect(evil.headers.get("access-control-allow-origin")).toBeNull();
    expectProblem(await tokenWith({ "sec-fetch-site": "cross-site" }), 403, "csrf");
    expectProblem(await tokenWith({ "sec-fetch-site": "same-site" }), 403, "csrf");
    expectProblem(await tokenWith({ origin: "null" }), 403, "csrf");
    // A look-alike of our own origin on another port is another origin.
    const port = new URL(s.url).port;
    expectProblem(await tokenWith({ origin: `http://127.0.0.1:${Number(port) + 1}` }), 403, "csrf");
  });

  it("refuses a cookie-authenticated request that says nothing about where it comes from", async () => {
    expectProblem(await tokenWith({}), 403, "csrf");
  });

  it("accepts same-origin requests", async () => {
    expect((await tokenWith({ origin: s.url })).status).toBe(200);
    expect((await tokenWith({ "sec-fetch-site": "same-origin" })).status).toBe(200);
    expect((await tokenWith({ "sec-fetch-site": "none" })).status).toBe(200);
  });

  it("accepts an allow-listed origin with CORS headers", async () => {
    const res = await tokenWith({ origin: allowed });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe(allowed);
    expect(res.headers.get("access-control-allow-credentials")).toBe("true");
    expect(res.headers.get("access-control-expose-headers")).toMatch(/X-Request-Id/i);
    const preflight = await fetch(`${s.url}/api/v1/auth/token`, {
      method: "OPTIONS",
      headers: { origin: allowed, "access-control-request-method": "POST" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe(allowed);
    expect(preflight.headers.get("access-control-allow-methods")).toMatch(/POST/);
    const foreign = await fetch(`${s.url}/api/v1/auth/token`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    expect(foreign.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("accepts Bearer requests without Origin", async () => {
    const token = (await tokenWith({ origin: s.url })).body as unknown as AccessToken;
    const res = await raw(`${s.url}/api/v1/auth/token`, {
      method: "POST",
      headers: { authorization: `Bearer ${token.token}` },
    });
    expect(res.status).toBe(200);
  });

  it("refuses a login posted from a foreign origin", async () => {
    const u = await registerUser(s.url);
    const c = new Client(s.url);
    expectProblem(await login(c, u.email, PASSWORD, { origin: "https://evil.example" }), 403, "csrf");
    expect(c.cookie).toBeUndefined();
    expect((await login(c, u.email, PASSWORD)).status).toBe(200);
  });
});

describe("security headers and cookies", () => {
  function expectSecureHeaders(headers: Headers): void {
    const csp = headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("unsafe-inline");
    expect(headers.get("x-content-type-options")).toBe("nosniff");
    expect(headers.get("x-frame-options")).toBe("DENY");
  }

  it("sends them on API answers and on the page, without HSTS outside production", async () => {
    const c = new Client(s.url);
    for (const path of ["/", "/api/v1/auth/me", "/api/v1/openapi.json", "/healthz"]) {
      const res = await c.get(path);
      expectSecureHeaders(res.headers);
      expect(res.headers.get("strict-transport-security"), path).toBeNull();
    }
    const u = await registerUser(s.url);
    expect(u.client.cookie).toMatch(/^dp_session=/);
  });

  it("adds HSTS and a __Host- Secure cookie in production", async () => {
    const prod = await startServer({ env: "production" });
    try {
      const c = new Client(prod.url);
      const res = await c.post("/api/v1/auth/register", {
        email: uniqueEmail(),
        password: PASSWORD,
        displayName: "Prod User",
      });
      expect(res.status).toBe(201);
      expectSecureHeaders(res.headers);
      expect(res.headers.get("strict-transport-security")).toMatch(/max-age=\d{7,}/);
      const setCookie = res.headers.get("set-cookie") ?? "";
      expect(setCookie).toMatch(/^__Host-dp_session=/);
      expect(setCookie).toMatch(/;\s*Secure/i);
      expect(setCookie).toMatch(/;\s*HttpOnly/i);
      expect(setCookie).toMatch(/;\s*Path=\//i);
      expect(setCookie).not.toMatch(/Domain=/i);
      const page = await c.get("/");
      expectSecureHeaders(page.headers);
      expect(page.headers.get("strict-transport-security")).toMatch(/max-age/);
      expect((await c.get<Me>("/api/v1/auth/me")).status).toBe(200);
      // The development cookie name means nothing in production.
      const value = (c.cookie as string).split("=")[1];
      const plain = new Client(prod.url);
      expect((await plain.get("/api/v1/auth/me", { cookie: `dp_session=${value}` })).status).toBe(401);
    } finally {
      await prod.close();
    }
  });
});

describe("request validation and problem details", () => {
  it("refuses a body over the limit with 413", async () => {
    const c = new Client(s.url);
    const big = { email: uniqueEmail(), password: PASSWORD, displayName: "x".repeat(2000) };
    expectProblem(await c.post<Problem>("/api/v1/auth/register", big), 413, "payload_too_large");
    // Without Content-Length (chunked), the limit holds as well.
    const chunks = [new TextEncoder().encode(JSON.stringify(big))];
    const stream = new ReadableStream<Uint8Array>({
      pull(ctrl) {
        const next = chunks.shift();
        if (next) ctrl.enqueue(next);
        else ctrl.close();
      },
    });
    const chunked = await raw(`${s.url}/api/v1/auth/register`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: s.url },
      body: stream,
      duplex: "half",
    } as RequestInit);
    expectProblem(chunked, 413, "payload_too_large");
    // Just under the limit is fine (and then fails validation for other reasons).
    const small = await c.post<Problem>("/api/v1/auth/register", { ...big, displayName: "x".repeat(100) });
    expectProblem(small, 400, "invalid_input");
  });

  it("answers a URL over Node's header limit with 431 problem+json", async () => {
    const res = await fetch(`${s.url}/api/v1/admin/users?q=${"x".repeat(20_000)}`);
    expect(res.status).toBe(431);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    expect(((await res.json()) as Problem).code).toBe("headers_too_large");
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
  });

  it("answers malformed JSON with 400 and a wrong content type with 415", async () => {
    const c = new Client(s.url);
    expectProblem(await c.post<Problem>("/api/v1/auth/login", '{"email": "a@b.c",'), 400, "invalid_input");
    const wrongType = await c.post<Problem>(
      "/api/v1/auth/login",
      JSON.stringify({ email: "a@example.com", password: "x" }),
      { "content-type": "text/plain" },
    );
    expectProblem(wrongType, 415, "unsupported_media_type");
    const form = await c.post<Problem>("/api/v1/auth/login", "email=a%40example.com&password=x", {
      "content-type": "application/x-www-form-urlencoded",
    });
    expectProblem(form, 415, "unsupported_media_type");
  });

  it("lists the offending fields by path", async () => {
    const c = new Client(s.url);
    const res = await c.post<Problem>("/api/v1/auth/register", { email: "not-an-email", password: "short" });
    expectProblem(res, 400, "invalid_input");
    const paths = res.body.errors?.map((e) => e.path) ?? [];
    expect(paths).toContain("body.email");
    expect(paths).toContain("body.password");
    expect(paths).toContain("body.displayName");
    for (const e of res.body.errors ?? []) expect(e.message).toBeTruthy();
    const extra = await c.post<Problem>("/api/v1/auth/login", { email: "a@example.com", password: "x", admin: true });
    expectProblem(extra, 400, "invalid_input");
    const query = await c.get<Problem>("/api/v1/admin/users?limit=abc");
    expect(query.status).toBe(401); // authentication comes before validation
  });

  it("echoes a sane incoming X-Request-Id and replaces an insane one", async () => {
    const c = new Client(s.url);
    const sane = await c.get<Problem>("/api/v1/auth/me", { "x-request-id": "trace-42.abc:1" });
    expectProblem(sane, 401, "unauthenticated");
    expect(sane.headers.get("x-request-id")).toBe("trace-42.abc:1");
    expect(sane.body.requestId).toBe("trace-42.abc:1");
    for (const bad of ["has spaces in it", "x".repeat(65), "<script>", "a\u00e9b"]) {
      const res = await c.get<Problem>("/api/v1/auth/me", { "x-request-id": bad });
      const id = res.headers.get("x-request-id");
      expect(id).not.toBe(bad);
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(res.body.requestId).toBe(id);
    }
    const ok = await c.get("/healthz");
    expect(ok.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const missing = await c.get<Problem>("/api/v1/nope");
    expectProblem(missing, 404, "not_found");
  });
});

describe("logs", () => {
  it("carry one line per request and no passwords, cookies or tokens", async () => {
    const lines: string[] = [];
    const config = testConfig({ logLevel: "info" });
    const running = await start(config, createLogger("info", { write: (line: string) => void lines.push(line) }));
    try {
      const c = new Client(running.url);
      const email = uniqueEmail("logged");
      const newPassword = "another quite long passphrase";
      expect((await c.post("/api/v1/auth/register", { email, password: PASSWORD, displayName: "Logged" })).status).toBe(
        201,
      );
      const firstCookie = c.cookie as string;
      expect((await login(new Client(running.url), email, WRONG)).status).toBe(401);
      expect((await login(c, email, PASSWORD)).status).toBe(200);
      const secondCookie = c.cookie as string;
      const token = (await c.post<AccessToken>("/api/v1/auth/token")).body.token;
      expect(
        (await c.post("/api/v1/auth/password", { currentPassword: PASSWORD, newPassword }, { "x-request-id": "pw-1" }))
          .status,
      ).toBe(204);
      const thirdCookie = c.cookie as string;
      const script = new Client(running.url);
      script.bearer = token;
      expect((await script.get("/api/v1/auth/me")).status).toBe(401); // revoked by the password change
      const fresh = (await c.post<AccessToken>("/api/v1/auth/token")).body.token;
      script.bearer = fresh;
      expect((await script.get("/api/v1/auth/me")).status).toBe(200);
      await waitFor(() => lines.length >= 8);

      const text = lines.join("");
      const secrets = [PASSWORD, WRONG, newPassword, token, fresh, email];
      for (const cookie of [firstCookie, secondCookie, thirdCookie]) {
        const value = cookie.slice(cookie.indexOf("=") + 1);
        secrets.push(value, ...value.split("."));
      }
      for (const jwt of [token, fresh]) secrets.push(...jwt.split(".").slice(1));
      for (const secret of secrets) expect(text.includes(secret), `log contains ${secret}`).toBe(false);
      for (const value of Object.values(config.secrets)) expect(text).not.toContain(value);

      const requests = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => "route" in l);
      expect(requests).toHaveLength(8);
      for (const r of requests) {
        expect(typeof r.requestId).toBe("string");
        expect(typeof r.method).toBe("string");
        expect(typeof r.route).toBe("string");
        expect(typeof r.status).toBe("number");
        expect(typeof r.ms).toBe("number");
      }
      const pw = requests.find((r) => r.requestId === "pw-1");
      expect(pw).toMatchObject({ method: "POST", route: "/api/v1/auth/password", status: 204 });
      expect(requests.some((r) => r.route === "/api/v1/auth/login" && r.status === 401)).toBe(true);
    } finally {
      await running.close();
    }
  });
});
