import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDb } from "../../db/client.ts";
import { registerUser } from "../helpers/factories.ts";
import { startServer } from "../helpers/server.ts";

let dataDir: string;

function cli(script: string): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    env: { PATH: process.env.PATH, DATA_DIR: dataDir, LOG_LEVEL: "silent" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, out })));
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "dp-cli-"));
  const s = await startServer({ dataDir, databaseUrl: undefined, secrets: {} });
  await registerUser(s.url);
  await registerUser(s.url);
  await s.close();
});
afterAll(() => rm(dataDir, { recursive: true, force: true }));

describe("command-line tools", () => {
  it("audit:verify reports an intact chain, keys:rotate re-encrypts and is audited", async () => {
    const before = await cli("server/cli/verify-audit.ts");
    expect(before.code).toBe(0);
    const verified = JSON.parse(before.out) as { ok: boolean; checked: number };
    expect(verified.ok).toBe(true);
    expect(verified.checked).toBeGreaterThanOrEqual(2);

    const rotated = await cli("server/cli/rotate-keys.ts");
    expect(rotated.code).toBe(0);
    expect(JSON.parse(rotated.out)).toMatchObject({ generatedKey: true, checked: 2, reencrypted: 2 });

    const after = JSON.parse((await cli("server/cli/verify-audit.ts")).out) as { ok: boolean; checked: number };
    expect(after).toMatchObject({ ok: true, checked: verified.checked + 1 });
  });

  it("audit:verify exits 1 and names the entry once a row was changed behind the trigger's back", async () => {
    const dbh = await openDb({ dataDir });
    try {
      await dbh.db.execute(sql`alter table audit_log disable trigger audit_log_no_update_delete`);
      await dbh.db.execute(sql`update audit_log set action = 'auth.nothing_to_see' where id = 2`);
      await dbh.db.execute(sql`alter table audit_log enable trigger audit_log_no_update_delete`);
    } finally {
      await dbh.close();
    }
    const res = await cli("server/cli/verify-audit.ts");
    expect(res.code).toBe(1);
    expect(JSON.parse(res.out)).toMatchObject({ ok: false, firstBadId: 2 });
  });
});
