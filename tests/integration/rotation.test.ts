import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { openDb } from "../../db/client.ts";
import { formatKeyList } from "../../server/crypto/keyring.ts";
import { rotateKeys } from "../../server/crypto/rotation.ts";
import { createLogger } from "../../server/log.ts";
import type { Me } from "../../shared/schemas/auth.ts";
import { testConfig } from "../helpers/config.ts";
import { PASSWORD, registerUser } from "../helpers/factories.ts";
import { Client } from "../helpers/http.ts";
import { startServer } from "../helpers/server.ts";

const log = createLogger("silent");
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function emailCiphertexts(dataDir: string): Promise<string[]> {
  const dbh = await openDb({ dataDir });
  try {
    const res = (await dbh.db.execute(sql`select email_enc from users order by created_at`)) as unknown as {
      rows: { email_enc: string }[];
    };
    return res.rows.map((r) => r.email_enc);
  } finally {
    await dbh.close();
  }
}

describe("key rotation", () => {
  it("generates a new key for file-kept secrets and re-encrypts every email with it", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "dp-rotate-"));
    dirs.push(dataDir);
    const overrides = { dataDir, databaseUrl: undefined, secrets: {} };
    const first = await startServer(overrides);
    const users = [await registerUser(first.url), await registerUser(first.url), await registerUser(first.url)];
    await first.close();

    const before = await emailCiphertexts(dataDir);
    const oldKey = before[0]?.split(".")[1];
    const dbh = await openDb({ dataDir });
    const report = await rotateKeys(testConfig(overrides), log, dbh.db).finally(() => dbh.close());
    expect(report).toMatchObject({ generatedKey: true, checked: 3, reencrypted: 3 });
    expect(report.activeKeyId).not.toBe(oldKey);

    const after = await emailCiphertexts(dataDir);
    expect(after.every((v) => v.split(".")[1] === report.activeKeyId)).toBe(true);

    // The restarted server reads the rotated data and still finds accounts by email.
    const second = await startServer(overrides);
    try {
      const c = new Client(second.url);
      const res = await c.post<Me>("/api/v1/auth/login", { email: users[1]?.email, password: PASSWORD });
      expect(res.status).toBe(200);
      expect(res.body.user.email).toBe(users[1]?.email);
    } finally {
      await second.close();
    }
  });

  it("re-encrypts to the newest ENCRYPTION_KEYS key, and a second run has nothing to do", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "dp-rotate-env-"));
    dirs.push(dataDir);
    const k1 = { id: "old", key: randomBytes(32) };
    const k2 = { id: "new", key: randomBytes(32) };
    const base = testConfig({ dataDir, databaseUrl: undefined });
    const secrets = { ...base.secrets, encryptionKeys: formatKeyList([k1]) };
    const s = await startServer({ dataDir, databaseUrl: undefined, secrets });
    const u = await registerUser(s.url);
    // The first account is an admin: it stores the tutor's API key, encrypted with the same keys.
    const put = await u.client.put("/api/v1/admin/tutor/model", {
      provider: "openai",
      baseUrl: "http://127.0.0.1:9/v1",
      model: "m",
      apiKey: "sk-rotate-me",
    });
    expect(put.status).toBe(200);
    await s.close();

    const rotated = { ...secrets, encryptionKeys: formatKeyList([k1, k2]) };
    const config = testConfig({ dataDir, databaseUrl: undefined, secrets: rotated });
    const dbh = await openDb({ dataDir });
    try {
      expect(await rotateKeys(config, log, dbh.db)).toMatchObject({
        generatedKey: false,
        activeKeyId: "new",
        reencrypted: 2,
      });
      expect(await rotateKeys(config, log, dbh.db)).toMatchObject({ reencrypted: 0, checked: 2 });
    } finally {
      await dbh.close();
    }
    // Once rotated, the old key can go.
    const onlyNew = { ...secrets, encryptionKeys: formatKeyList([k2]) };
    const again = await startServer({ dataDir, databaseUrl: undefined, secrets: onlyNew });
    try {
      const c = new Client(again.url);
      expect((await c.post("/api/v1/auth/login", { email: u.email, password: PASSWORD })).status).toBe(200);
      expect((await c.get<Me>("/api/v1/auth/me")).body.user.email).toBe(u.email);
      // and the API key still decrypts
      const { provider } = await again.deps.tutorModels.resolve();
      expect(provider.name).toBe("openai");
    } finally {
      await again.close();
    }
  });
});
