import { type SQL, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../server/audit/audit-log.ts";
import type { AuditEntry, AuditPage, AuditVerification, UserPage } from "../../shared/schemas/admin.ts";
import type { Me, User } from "../../shared/schemas/auth.ts";
import type { Problem } from "../../shared/schemas/common.ts";
import { PASSWORD, registerUser, type TestUser, uniqueEmail, userWithRole } from "../helpers/factories.ts";
import { Client } from "../helpers/http.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

const UA = "audit-test-agent/1.0";
const NEW_PASSWORD = "a different long passphrase";

/** Rows of a raw query, whichever driver is underneath. */
async function query<T>(server: TestServer, statement: SQL): Promise<T[]> {
  return ((await server.deps.dbh.db.execute(statement)) as unknown as { rows: T[] }).rows;
}

const auditRows = async (server: TestServer) =>
  (await query<{ n: number }>(server, sql`select count(*)::int as n from audit_log`))[0]?.n ?? 0;

describe("audit trail of security events", () => {
  let s: TestServer;
  let admin: TestUser;
  let learner: { id: string; email: string; client: Client };
  let mallory: TestUser;
  /** request id → what that request must have written */
  const expected: Record<string, Partial<AuditEntry>> = {};
  const h = (requestId: string) => ({ "x-request-id": requestId, "user-agent": UA });

  beforeAll(async () => {
    s = await startServer();
    admin = await registerUser(s.url, "Audit Admin");
    const adminId = admin.me.user.id;

    const client = new Client(s.url);
    const email = uniqueEmail("audited");
    const reg = await client.post<Me>(
      "/api/v1/auth/register",
      { email, password: PASSWORD, displayName: "Audited" },
      h("r-register"),
    );
    expect(reg.status).toBe(201);
    const id = reg.body.user.id;
    learner = { id, email, client };
    const user = { targetType: "user", targetId: id };
    expected["r-register"] = { action: "auth.register", outcome: "success", actorId: id, ...user };

    const other = new Client(s.url);
    expect(
      (await other.post("/api/v1/auth/login", { email, password: "wrong password!" }, h("r-login-bad"))).status,
    ).toBe(401);
    expected["r-login-bad"] = {
      action: "auth.login",
      outcome: "failure",
      actorId: null,
      ...user,
      details: { reason: "invalid_credentials" },
    };
    expect((await other.post("/api/v1/auth/login", { email, password: PASSWORD }, h("r-login-ok"))).status).toBe(200);
    expected["r-login-ok"] = { action: "auth.login", outcome: "success", actorId: id, ...user };

    expect((await client.post("/api/v1/auth/token", undefined, h("r-token"))).status).toBe(200);
    expected["r-token"] = { action: "auth.token_issue", outcome: "success", actorId: id, targetType: "session" };

    const pw = await client.post(
      "/api/v1/auth/password",
      { currentPassword: PASSWORD, newPassword: NEW_PASSWORD },
      h("r-password"),
    );
    expect(pw.status).toBe(204);
    expected["r-password"] = {
      action: "auth.password_change",
      outcome: "success",
      actorId: id,
      ...user,
      details: { revokedSessions: 2 },
    };

    expect((await client.post("/api/v1/auth/logout", undefined, h("r-logout"))).status).toBe(204);
    expected["r-logout"] = { action: "auth.logout", outcome: "success", actorId: id, targetType: "session" };

    const patch = (body: unknown, requestId: string) =>
      admin.client.patch<User>(`/api/v1/admin/users/${id}`, body, h(requestId));
    expect((await patch({ role: "teacher" }, "r-role")).status).toBe(200);
    expected["r-role"] = {
      action: "admin.user_role",
      outcome: "success",
      actorId: adminId,
      ...user,
      details: { from: "learner", to: "teacher" },
    };
    expect((await patch({ disabled: true }, "r-disable")).status).toBe(200);
    expected["r-disable"] = { action: "admin.user_disable", outcome: "success", actorId: adminId, ...user };
    expect((await patch({ disabled: false }, "r-enable")).status).toBe(200);
    expected["r-enable"] = { action: "admin.user_enable", outcome: "success", actorId: adminId, ...user };

    mallory = await registerUser(s.url, "Mallory");
    expect((await mallory.client.get("/api/v1/admin/users", h("r-denied"))).status).toBe(403);
    expected["r-denied"] = {
      action: "access.denied",
      outcome: "denied",
      actorId: mallory.me.user.id,
      details: { method: "GET", path: "/api/v1/admin/users", permission: "users:read" },
    };
  });
  afterAll(() => s?.close());

  const audit = (qs = "") => admin.client.get<AuditPage>(`/api/v1/admin/audit${qs}`);

  it("records every security event with actor, target, ip, user agent, request id and outcome", async () => {
    const page = await audit("?limit=100");
    expect(page.status).toBe(200);
    expect(page.body.nextBefore).toBeNull();
    const ids = page.body.items.map((e) => e.id);
    expect(ids).toEqual([...ids].sort((a, b) => b - a)); // newest first
    for (const [requestId, want] of Object.entries(expected)) {
      const entries = page.body.items.filter((e) => e.requestId === requestId);
      expect(entries, requestId).toHaveLength(1);
      const entry = entries[0] as AuditEntry;
      expect(entry, requestId).toMatchObject(want);
      expect(entry.ip, requestId).toMatch(/127\.0\.0\.1/);
      expect(entry.userAgent, requestId).toBe(UA);
      expect(entry.hash).toMatch(/^[0-9a-f]{64}$/);
      if (want.targetType === "session") expect(entry.targetId, requestId).toMatch(/^[a-z2-7]{26}$/);
    }
    // The audit trail never holds credentials.
    const text = JSON.stringify(page.body);
    for (const secret of [PASSWORD, NEW_PASSWORD, "wrong password!", learner.email]) expect(text).not.toContain(secret);
  });

  it("filters by action, outcome and actor", async () => {
    const logins = await audit("?action=auth.login");
    expect(logins.body.items.length).toBeGreaterThanOrEqual(2);
    expect(logins.body.items.every((e) => e.action === "auth.login")).toBe(true);
    expect(new Set(logins.body.items.map((e) => e.outcome))).toEqual(new Set(["success", "failure"]));

    const failures = await audit("?action=auth.login&outcome=failure");
    expect(failures.body.items.length).toBeGreaterThanOrEqual(1);
    expect(failures.body.items.every((e) => e.action === "auth.login" && e.outcome === "failure")).toBe(true);
    expect(failures.body.items.some((e) => e.requestId === "r-login-bad")).toBe(true);

    const denied = await audit("?outcome=denied");
    expect(denied.body.items.map((e) => e.requestId)).toEqual(["r-denied"]);

    const mine = await audit(`?actorId=${learner.id}`);
    expect(mine.body.items.every((e) => e.actorId === learner.id)).toBe(true);
    expect(mine.body.items.map((e) => e.requestId)).toEqual([
      "r-logout",
      "r-password",
      "r-token",
      "r-login-ok",
      "r-register",
    ]);

    const byAdmin = await audit(`?actorId=${admin.me.user.id}&action=admin.user_role`);
    expect(byAdmin.body.items.map((e) => e.requestId)).toEqual(["r-role"]);

    const none = await audit("?action=no.such.action");
    expect(none.body).toEqual({ items: [], nextBefore: null });
  });

  it("pages newest first with the `before` cursor, without duplicates or gaps", async () => {
    const all = (await audit("?limit=100")).body.items;
    const top = all[0]?.id as number;
    const seen: number[] = [];
    let before: number | null = top + 1;
    let pages = 0;
    while (before !== null) {
      const page: AuditPage = (await audit(`?limit=4&before=${before}`)).body;
      expect(page.items.length).toBeLessThanOrEqual(4);
      seen.push(...page.items.map((e) => e.id));
      before = page.nextBefore;
      if (before !== null) expect(before).toBe(page.items.at(-1)?.id);
      pages++;
    }
    expect(pages).toBe(Math.ceil(all.length / 4));
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual(all.map((e) => e.id));
  });

  it("refuses invalid audit queries and non-admins", async () => {
    for (const qs of ["?outcome=maybe", "?limit=1000", "?before=0", "?actorId=not-a-uuid", "?from=yesterday", "?x=1"]) {
      const res = await admin.client.get<Problem>(`/api/v1/admin/audit${qs}`);
      expect(res.status, qs).toBe(400);
      expect(res.body.code).toBe("invalid_input");
      expect(res.body.errors?.[0]?.path, qs).toMatch(/^query/);
    }
    expect((await mallory.client.get("/api/v1/admin/audit")).status).toBe(403);
    expect((await mallory.client.get("/api/v1/admin/audit/verify")).status).toBe(403);
    expect((await new Client(s.url).get("/api/v1/admin/audit")).status).toBe(401);
  });

  it("verifies the whole chain", async () => {
    const rows = await auditRows(s);
    const res = await admin.client.get<AuditVerification>("/api/v1/admin/audit/verify");
    expect(res.body).toEqual({ ok: true, checked: rows, firstBadId: null });
    // The verification itself is audited.
    const last = (await audit("?action=admin.audit_verify")).body.items[0];
    expect(last?.details).toMatchObject({ ok: true, checked: rows });
  });
});

describe("audit chain integrity", () => {
  let s: TestServer;
  let admin: Client;
  beforeAll(async () => {
    s = await startServer();
    admin = (await registerUser(s.url, "Chain Admin")).client;
    for (let i = 0; i < 3; i++) await registerUser(s.url);
  });
  afterAll(() => s?.close());

  const verify = async () => (await admin.get<AuditVerification>("/api/v1/admin/audit/verify")).body;

  it("keeps the chain valid under concurrent appends, also from two writers", async () => {
    const before = await auditRows(s);
    const other = new AuditLog(s.deps.dbh.db); // a second node's writer on the same database
    const ctx = { actorId: null, ip: "10.0.0.1", userAgent: "load", requestId: null };
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        (i % 2 === 0 ? s.deps.audit : other).append(ctx, {
          action: "test.concurrent",
          outcome: "success",
          details: { i, nested: { b: [1, { z: true, a: null }], a: "x" } },
        }),
      ),
    );
    expect(await auditRows(s)).toBe(before + 50);
    expect(await verify()).toEqual({ ok: true, checked: before + 50, firstBadId: null });
    const links = await query<{ id: number; prev_hash: string; hash: string }>(
      s,
      sql`select id, prev_hash, hash from audit_log order by id`,
    );
    for (let i = 1; i < links.length; i++) expect(links[i]?.prev_hash).toBe(links[i - 1]?.hash);
  });

  it("refuses UPDATE, DELETE and TRUNCATE through its trigger", async () => {
    const db = s.deps.dbh.db;
    await expect(
      db.execute(sql`update audit_log set details = '{"forged":true}'::jsonb where id = 2`),
    ).rejects.toThrow();
    await expect(db.execute(sql`update audit_log set action = 'nothing' where id = 2`)).rejects.toThrow();
    await expect(db.execute(sql`delete from audit_log where id = 2`)).rejects.toThrow();
    await expect(db.execute(sql`delete from audit_log`)).rejects.toThrow();
    await expect(db.execute(sql`truncate audit_log`)).rejects.toThrow();
    const rows = await auditRows(s);
    expect(await verify()).toMatchObject({ ok: true, checked: rows });
  });

  it("detects an edited row, and a removed one, once the trigger is disabled", async () => {
    const db = s.deps.dbh.db;
    // An attacker with database rights can switch the trigger off...
    await db.execute(sql`alter table audit_log disable trigger audit_log_no_update_delete`);
    const [target] = await query<{ id: number; details: string }>(
      s,
      sql`select id, details::text as details from audit_log where action = 'auth.register' order by id limit 1 offset 1`,
    );
    if (!target) throw new Error("no row to tamper with");
    const id = Number(target.id);
    await db.execute(sql`update audit_log set details = '{"role":"admin"}'::jsonb where id = ${id}`);
    const earlier = await query<{ n: number }>(s, sql`select count(*)::int as n from audit_log where id < ${id}`);
    expect(await verify()).toEqual({ ok: false, checked: earlier[0]?.n, firstBadId: id });
    // The failed verification is itself on record.
    const failed = await admin.get<AuditPage>("/api/v1/admin/audit?action=admin.audit_verify&outcome=failure");
    expect(failed.body.items[0]?.details).toMatchObject({ ok: false, firstBadId: id });

    // ...changing the action instead is caught as well.
    await db.execute(sql`update audit_log set details = ${target.details}::jsonb where id = ${id}`);
    expect((await verify()).ok).toBe(true);
    await db.execute(sql`update audit_log set action = 'auth.login' where id = ${id}`);
    expect(await verify()).toMatchObject({ ok: false, firstBadId: id });
    await db.execute(sql`update audit_log set action = 'auth.register' where id = ${id}`);
    expect((await verify()).ok).toBe(true);

    // Removing a row breaks the link of the one after it.
    const [next] = await query<{ id: number }>(s, sql`select min(id) as id from audit_log where id > ${id}`);
    await db.execute(sql`delete from audit_log where id = ${id}`);
    expect(await verify()).toMatchObject({ ok: false, firstBadId: Number(next?.id) });
  });
});

describe("the last admin", () => {
  let s: TestServer;
  let first: TestUser;
  beforeAll(async () => {
    s = await startServer();
    first = await registerUser(s.url, "Only Admin");
  });
  afterAll(() => s?.close());

  const activeAdmins = async () =>
    (
      await query<{ n: number }>(s, sql`select count(*)::int as n from users where role = 'admin' and disabled = false`)
    )[0]?.n;

  it("cannot demote or disable themself", async () => {
    expect(first.me.user.role).toBe("admin");
    for (const body of [
      { role: "learner" },
      { role: "teacher" },
      { disabled: true },
      { role: "admin", disabled: true },
    ]) {
      const res = await first.client.patch<Problem>(`/api/v1/admin/users/${first.me.user.id}`, body);
      expect(res.status, JSON.stringify(body)).toBe(409);
      expect(res.body.code).toBe("last_admin");
    }
    expect(await activeAdmins()).toBe(1);
    // A no-op on the last admin is fine.
    expect((await first.client.patch(`/api/v1/admin/users/${first.me.user.id}`, { role: "admin" })).status).toBe(200);
    const refused = await first.client.get<AuditPage>("/api/v1/admin/audit?action=admin.user_update&outcome=failure");
    expect(refused.body.items.length).toBe(4);
    expect(refused.body.items[0]?.details).toMatchObject({ reason: "last_admin" });
  });

  it("lets one of two admins be demoted or disabled, but not both", async () => {
    const second = await userWithRole(s.url, first.client, "admin");
    expect(await activeAdmins()).toBe(2);
    expect((await second.client.patch(`/api/v1/admin/users/${first.me.user.id}`, { disabled: true })).status).toBe(200);
    const res = await second.client.patch<Problem>(`/api/v1/admin/users/${second.me.user.id}`, { role: "learner" });
    expect(res.body.code).toBe("last_admin");
    // A disabled admin does not count: re-enabling them restores two.
    expect((await second.client.patch(`/api/v1/admin/users/${first.me.user.id}`, { disabled: false })).status).toBe(
      200,
    );
    first.client = new Client(s.url);
    await first.client.post("/api/v1/auth/login", { email: first.email, password: PASSWORD });
    expect((await first.client.patch(`/api/v1/admin/users/${second.me.user.id}`, { role: "learner" })).status).toBe(
      200,
    );
    expect(await activeAdmins()).toBe(1);
  });

  it("leaves at least one admin when two admins demote each other at the same time", async () => {
    for (let round = 0; round < 5; round++) {
      const a = first;
      const b = await userWithRole(s.url, a.client, "admin");
      expect(await activeAdmins()).toBe(2);
      const change = round % 2 === 0 ? { role: "learner" } : { disabled: true };
      const [ra, rb] = await Promise.all([
        a.client.patch<Problem>(`/api/v1/admin/users/${b.me.user.id}`, change),
        b.client.patch<Problem>(`/api/v1/admin/users/${a.me.user.id}`, change),
      ]);
      const statuses = [ra.status, rb.status].sort();
      expect(statuses[0], JSON.stringify([ra.body, rb.body])).toBe(200);
      // The loser is refused by the last-admin rule, or already demoted (403) or disabled (401) by the winner.
      expect([401, 403, 409]).toContain(statuses[1]);
      expect(await activeAdmins()).toBe(1);
      // Whoever is left carries on as `first`.
      if (ra.status !== 200) first = b;
    }
  });
});

describe("admin user list", () => {
  let s: TestServer;
  let admin: Client;
  const tag = `Quokka${Date.now().toString(36)}`;
  const named: TestUser[] = [];
  beforeAll(async () => {
    s = await startServer();
    admin = (await registerUser(s.url, "List Admin")).client;
    for (let i = 0; i < 5; i++) named.push(await registerUser(s.url, `Member ${tag} ${i}`));
    await registerUser(s.url, "Someone Else");
    await admin.patch(`/api/v1/admin/users/${named[1]?.me.user.id}`, { role: "teacher" });
    await admin.patch(`/api/v1/admin/users/${named[2]?.me.user.id}`, { disabled: true });
  });
  afterAll(() => s?.close());

  const list = (qs: string) => admin.get<UserPage>(`/api/v1/admin/users${qs}`);

  it("pages through users with page, limit and total", async () => {
    const everyone = await list("");
    expect(everyone.body).toMatchObject({ page: 1, limit: 20, total: 7 });
    const ids: string[] = [];
    for (const [page, size] of [
      [1, 2],
      [2, 2],
      [3, 1],
      [4, 0],
    ] as const) {
      const res = await list(`?q=${tag}&limit=2&page=${page}`);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ page, limit: 2, total: 5 });
      expect(res.body.items).toHaveLength(size);
      ids.push(...res.body.items.map((u) => u.id));
    }
    expect(new Set(ids)).toEqual(new Set(named.map((u) => u.me.user.id)));
    // Each user comes decrypted, without secrets.
    const first = (await list(`?q=${tag}&limit=100`)).body.items.find((u) => u.id === named[0]?.me.user.id);
    expect(first).toEqual(named[0]?.me.user);
  });

  it("searches display names by substring, whatever the case, and emails only exactly", async () => {
    const lower = await list(`?q=${tag.toLowerCase().slice(2)}`);
    expect(lower.body.total).toBe(5);
    expect((await list("?q=someone%20else")).body.items.map((u) => u.displayName)).toEqual(["Someone Else"]);
    const target = named[3] as TestUser;
    for (const q of [target.email, target.email.toUpperCase(), ` ${target.email} `]) {
      const res = await list(`?q=${encodeURIComponent(q)}`);
      expect(res.body.total, q).toBe(1);
      expect(res.body.items[0]?.id).toBe(target.me.user.id);
    }
    // Emails are encrypted: no substring search on them.
    expect((await list(`?q=${encodeURIComponent("@example.com")}`)).body.total).toBe(0);
    // LIKE wildcards are plain characters.
    expect((await list("?q=%25")).body.total).toBe(0);
    expect((await list("?q=_")).body.total).toBe(0);
  });

  it("filters by role and by disabled", async () => {
    const teachers = await list("?role=teacher");
    expect(teachers.body.items.map((u) => u.id)).toEqual([named[1]?.me.user.id]);
    const admins = await list("?role=admin");
    expect(admins.body.total).toBe(1);
    const disabled = await list("?disabled=true");
    expect(disabled.body.items.map((u) => u.id)).toEqual([named[2]?.me.user.id]);
    const enabled = await list(`?disabled=false&q=${tag}`);
    expect(enabled.body.total).toBe(4);
    expect(enabled.body.items.every((u) => !u.disabled)).toBe(true);
    const learners = await list(`?role=learner&disabled=false&q=${tag}`);
    expect(learners.body.total).toBe(3);
  });

  it("refuses invalid query values with a 400 problem naming the parameter", async () => {
    for (const [qs, path] of [
      ["?disabled=yes", "query.disabled"],
      ["?limit=1000", "query.limit"],
      ["?limit=0", "query.limit"],
      ["?page=0", "query.page"],
      ["?page=abc", "query.page"],
      ["?role=superuser", "query.role"],
      [`?q=${"x".repeat(101)}`, "query.q"],
    ]) {
      const res = await admin.get<Problem>(`/api/v1/admin/users${qs}`);
      expect(res.status, qs).toBe(400);
      expect(res.headers.get("content-type")).toMatch(/problem\+json/);
      expect(res.body.code).toBe("invalid_input");
      expect(
        res.body.errors?.map((e) => e.path),
        qs,
      ).toContain(path);
    }
    const unknown = await admin.get<Problem>("/api/v1/admin/users?sort=email");
    expect(unknown.status).toBe(400);
  });
});
