import { openDb } from "../../db/client.ts";
import { AuditLog } from "../audit/audit-log.ts";
import { loadConfig } from "../config.ts";

/** `npm run audit:verify`: walks the audit hash chain; exits 1 when an entry was changed or removed. */
const config = loadConfig(process.env);
const dbh = await openDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
try {
  const result = await new AuditLog(dbh.db).verify();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  if (!result.ok) process.exitCode = 1;
} finally {
  await dbh.close();
}
