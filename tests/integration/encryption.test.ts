import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EMAIL_AAD } from "../../server/auth/accounts.ts";
import { ConfigError, loadConfig } from "../../server/config.ts";
import { createLogger } from "../../server/log.ts";
import { loadSecrets, SECRETS_FILE } from "../../server/secrets.ts";
import type { Me } from "../../shared/schemas/auth.ts";
import { testConfig } from "../helpers/config.ts";
import { PASSWORD, registerUser } from "../helpers/factories.ts";
import { Client } from "../helpers/http.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

type Row = Record<string, unknown>;
const rowsOf = (result: unknown) => (result as { rows: Row[] }).rows;

/** A logger that keeps its JSON lines. */
function capture() {
  const lines: string[] = [];
  const log = createLogger("info", { write: (line: string) => void lines.push(line) });
  return { log, lines, entries: () => lines.map((l) => JSON.parse(l) as Row) };
}

const tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "doctorpy-test-"));
  tempDirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe("encryption at rest", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s?.close());

  it("stores no plaintext email anywhere in the user's row", async () => {
    const u = await registerUser(s.url, "Cipher Person");
    const [row] = rowsOf(await s.deps.dbh.db.execute(sql`select * from users where id = ${u.me.user.id}`));
    if (!row) throw new Error("user row not found");
    const text = JSON.stringify(row).toLowerCase();
    const [local] = u.email.split("@");
    expect(text).not.toContain(u.email.toLowerCase());
    expect(text).not.toContain(String(local).toLowerCase());
    expect(String(row.email_enc)).toMatch(/^v1\.t1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(row.email_index).not.toBe(u.email);
    expect(String(row.email_index)).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(String(row.password_hash)).toMatch(/^\$argon2id\$/);
    // It is the email, encrypted for its column.
    const keyring = s.deps.secrets.keyring;
    expect(keyring.decrypt(String(row.email_enc), EMAIL_AAD)).toBe(u.email);
    expect(() => keyring.decrypt(String(row.email_enc), "users.display_name")).toThrow();
  });

  it("keeps emails out of every other table too", async () => {
    const u = await registerUser(s.url);
    await u.client.post("/api/v1/auth/token");
    await new Client(s.url).post("/api/v1/auth/login", { email: u.email, password: "a wrong password" });
    for (const table of ["users", "sessions", "audit_log"]) {
      const rows = rowsOf(await s.deps.dbh.db.execute(sql.raw(`select * from ${table}`)));
      expect(rows.length, table).toBeGreaterThan(0);
      expect(JSON.stringify(rows).toLowerCase(), table).not.toContain(u.email.toLowerCase());
    }
  });

  it("gives two users with the same name different ciphertexts and indexes", async () => {
    const a = await registerUser(s.url, "Twin");
    const b = await registerUser(s.url, "Twin");
    const rows = rowsOf(
      await s.deps.dbh.db.execute(
        sql`select email_enc, email_index from users where id in (${a.me.user.id}, ${b.me.user.id})`,
      ),
    );
    expect(rows).toHaveLength(2);
    expect(rows[0]?.email_enc).not.toBe(rows[1]?.email_enc);
    expect(rows[0]?.email_index).not.toBe(rows[1]?.email_index);
  });
});

describe("secrets", () => {
  it("generates missing secrets once into secrets.json (mode 0600) with a warning, then reuses them", async () => {
    const dir = await tempDir();
    const config = testConfig({ dataDir: dir, secrets: {} });
    const first = capture();
    const a = await loadSecrets(config, first.log);
    const file = join(dir, SECRETS_FILE);
    expect(a.file).toBe(file);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const stored = JSON.parse(await readFile(file, "utf8")) as {
      jwtSecret: string;
      blindIndexKey: string;
      encryptionKeys: { id: string; key: string }[];
    };
    expect(stored.jwtSecret.length).toBeGreaterThanOrEqual(32);
    expect(stored.encryptionKeys).toHaveLength(1);
    const warnings = first.entries().filter((e) => e.level === 40);
    expect(warnings).toHaveLength(1);
    expect(String(warnings[0]?.msg)).toMatch(/generated/);
    expect(warnings[0]?.generated).toEqual(["JWT_SECRET", "ENCRYPTION_KEYS", "BLIND_INDEX_KEY"]);
    // The warning names the file, not the secrets.
    const logged = first.lines.join("");
    for (const secret of [stored.jwtSecret, stored.blindIndexKey, stored.encryptionKeys[0]?.key as string]) {
      expect(logged).not.toContain(secret);
    }

    const second = capture();
    const b = await loadSecrets(config, second.log);
    expect(second.lines).toHaveLength(0);
    expect(Buffer.from(b.jwtKey).equals(Buffer.from(a.jwtKey))).toBe(true);
    expect(b.keyring.activeKeyId).toBe(a.keyring.activeKeyId);
    expect(b.keyring.decrypt(a.keyring.encrypt("kept", "aad"), "aad")).toBe("kept");
    expect(b.keyring.blindIndex("x@example.com", "p")).toBe(a.keyring.blindIndex("x@example.com", "p"));
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it("prefers secrets from the environment and generates only what is missing", async () => {
    const dir = await tempDir();
    const given = testConfig().secrets;
    const log = capture();
    const onlyJwt = await loadSecrets(testConfig({ dataDir: dir, secrets: { jwtSecret: given.jwtSecret } }), log.log);
    expect(Buffer.from(onlyJwt.jwtKey).toString()).toBe(given.jwtSecret);
    expect(log.entries()[0]?.generated).toEqual(["ENCRYPTION_KEYS", "BLIND_INDEX_KEY"]);
    const all = capture();
    const full = await loadSecrets(testConfig({ dataDir: await tempDir(), secrets: given }), all.log);
    expect(all.lines).toHaveLength(0);
    expect(full.file).toBeUndefined();
    expect(full.keyring.activeKeyId).toBe("t1");
  });

  it("refuses to start in production without every secret, naming the missing ones", async () => {
    const dir = await tempDir();
    const { log } = capture();
    await expect(loadSecrets(testConfig({ env: "production", dataDir: dir, secrets: {} }), log)).rejects.toThrow(
      /JWT_SECRET, ENCRYPTION_KEYS, BLIND_INDEX_KEY/,
    );
    const given = testConfig().secrets;
    const partial = testConfig({ env: "production", dataDir: dir, secrets: { jwtSecret: given.jwtSecret } });
    const err = await loadSecrets(partial, log).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/ENCRYPTION_KEYS, BLIND_INDEX_KEY/);
    expect((err as Error).message).not.toMatch(/JWT_SECRET/);
    await expect(stat(join(dir, SECRETS_FILE))).rejects.toThrow(/ENOENT/);
    await expect(loadSecrets(testConfig({ env: "production", secrets: given }), log)).resolves.toBeDefined();
  });

  it("lets a restarted server on the same data directory read its data and accept old sessions", async () => {
    const dir = await tempDir();
    const overrides = { dataDir: dir, databaseUrl: undefined, secrets: {} };
    const before = await startServer(overrides);
    const kind = before.deps.dbh.kind;
    const u = await registerUser(before.url, "Survivor").finally(() => before.close());
    expect(kind).toBe("pglite");
    const after = await startServer(overrides);
    try {
      const c = new Client(after.url);
      c.cookie = u.client.cookie;
      const me = await c.get<Me>("/api/v1/auth/me");
      expect(me.status).toBe(200);
      expect(me.body.user.email).toBe(u.email);
      expect(me.body.user.displayName).toBe("Survivor");
      // The blind index is stable too: login by email works.
      expect(
        (await new Client(after.url).post("/api/v1/auth/login", { email: u.email, password: PASSWORD })).status,
      ).toBe(200);
    } finally {
      await after.close();
    }
  });
});

describe("configuration", () => {
  it("returns the defaults for an empty environment", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      env: "development",
      port: 3000,
      host: "0.0.0.0",
      dataDir: "./data",
      databaseUrl: undefined,
      databasePoolSize: 10,
      redisUrl: undefined,
      corsOrigins: [],
      trustProxy: false,
      adminEmail: undefined,
      secrets: { jwtSecret: undefined, encryptionKeys: undefined, blindIndexKey: undefined },
      session: { idleTimeoutSec: 14 * 24 * 3600, maxAgeSec: 90 * 24 * 3600, cacheTtlSec: 5 },
      tokenTtlSec: 600,
      bodyLimit: 64 * 1024,
      rateLimits: { perIp: 600, perUser: 300, loginFailures: 5, loginFailuresPerIp: 100, lockoutSec: 900 },
      logLevel: "info",
      clientDir: "./client/dist",
    });
    // Empty strings mean unset.
    expect(loadConfig({ PORT: "", DATABASE_URL: "" })).toEqual(config);
  });

  it("parses the variables it is given", () => {
    const config = loadConfig({
      NODE_ENV: "production",
      PORT: "8080",
      DATABASE_URL: "postgres://u:p@db:5432/dp",
      REDIS_URL: "redis://cache:6379",
      CORS_ORIGINS: "https://a.example, https://b.example,",
      TRUST_PROXY: "1",
      ADMIN_EMAIL: "Boss@Example.com",
      TOKEN_TTL: "3600",
      LOGIN_LOCKOUT: "60",
    });
    expect(config).toMatchObject({
      env: "production",
      port: 8080,
      databaseUrl: "postgres://u:p@db:5432/dp",
      redisUrl: "redis://cache:6379",
      corsOrigins: ["https://a.example", "https://b.example"],
      trustProxy: true,
      adminEmail: "boss@example.com",
      tokenTtlSec: 3600,
    });
    expect(config.rateLimits.lockoutSec).toBe(60);
  });

  it("throws a ConfigError naming every bad variable", () => {
    const bad = {
      PORT: "abc",
      DATABASE_URL: "mysql://x",
      TOKEN_TTL: "999999",
      REDIS_URL: "http://cache",
      TRUST_PROXY: "yes",
      JWT_SECRET: "tiny-secret-value",
      LOG_LEVEL: "loud",
    };
    let error: unknown;
    try {
      loadConfig(bad);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const e = error as ConfigError;
    for (const name of Object.keys(bad)) expect(e.message, name).toContain(name);
    expect(e.problems).toHaveLength(Object.keys(bad).length);
    expect(e.message).toMatch(/TOKEN_TTL: access tokens are short-lived/);
    expect(e.message).toMatch(/DATABASE_URL: must start with postgres:\/\//);
    // Secrets are never echoed back in the message.
    expect(e.message).not.toContain("tiny-secret-value");
    for (const [name, value] of Object.entries({ PORT: "70000", BODY_LIMIT: "10", SESSION_MAX_AGE: "-1" })) {
      expect(() => loadConfig({ [name]: value }), name).toThrow(new RegExp(name));
    }
  });
});
