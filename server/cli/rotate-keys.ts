import { openDb } from "../../db/client.ts";
import { AuditLog } from "../audit/audit-log.ts";
import { loadConfig } from "../config.ts";
import { rotateKeys } from "../crypto/rotation.ts";
import { createLogger } from "../log.ts";

/** `npm run keys:rotate`: new active key (file-kept keys), then every ciphertext re-encrypted with it. */
const config = loadConfig(process.env);
const log = createLogger(config.logLevel);
const dbh = await openDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
try {
  const report = await rotateKeys(config, log, dbh.db);
  await new AuditLog(dbh.db).append(
    { actorId: null, ip: null, userAgent: "cli", requestId: null },
    { action: "system.keys_rotate", outcome: "success", details: { ...report } },
  );
  process.stdout.write(`${JSON.stringify(report)}\n`);
} finally {
  await dbh.close();
}
