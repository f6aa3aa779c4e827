import { sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { EMAIL_AAD } from "../auth/accounts.ts";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { loadSecrets, readSecretFile, writeSecretFile } from "../secrets.ts";
import { reencryptTutorKey } from "../tutor/models.ts";
import { type Keyring, newDataKey } from "./keyring.ts";

/** Every encrypted column (the tutor's API key, inside a JSON setting, rotates in `reencryptAll` too). */
export const ENCRYPTED_COLUMNS = [{ table: "users", id: "id", column: "email_enc", aad: EMAIL_AAD }] as const;

export interface RotationReport {
  activeKeyId: string;
  generatedKey: boolean;
  checked: number;
  reencrypted: number;
}

/** Re-encrypts, with the active key, every value of ENCRYPTED_COLUMNS written with an older one. */
export async function reencryptAll(
  db: Db,
  keyring: Keyring,
  batch = 500,
): Promise<{ checked: number; reencrypted: number }> {
  let checked = 0;
  let reencrypted = 0;
  for (const col of ENCRYPTED_COLUMNS) {
    const table = sql.identifier(col.table);
    const id = sql.identifier(col.id);
    const value = sql.identifier(col.column);
    let after = "";
    for (;;) {
      const res = await db.execute(
        sql`select ${id}::text as id, ${value} as value from ${table} where ${id}::text > ${after} order by ${id}::text limit ${batch}`,
      );
      const rows = (res as unknown as { rows: { id: string; value: string }[] }).rows;
      for (const row of rows) {
        checked++;
        if (!keyring.isStale(row.value)) continue;
        const fresh = keyring.encrypt(keyring.decrypt(row.value, col.aad), col.aad);
        // Only replace the value we read: a concurrent write wins over the rotation.
        await db.execute(
          sql`update ${table} set ${value} = ${fresh} where ${id}::text = ${row.id} and ${value} = ${row.value}`,
        );
        reencrypted++;
      }
      const last = rows.at(-1);
      if (!last || rows.length < batch) break;
      after = last.id;
    }
  }
  const tutorKey = await reencryptTutorKey(db, keyring);
  return { checked: checked + tutorKey.checked, reencrypted: reencrypted + tutorKey.reencrypted };
}

/**
 * Key rotation. When the keys live in `<DATA_DIR>/secrets.json`, a new key is generated and becomes active;
 * when they come from ENCRYPTION_KEYS, the operator appends the new key there first. Either way every
 * ciphertext is then re-encrypted with the newest key. Old keys can be dropped once this has run.
 */
export async function rotateKeys(config: Config, log: Logger, db: Db): Promise<RotationReport> {
  let secrets = await loadSecrets(config, log);
  let generatedKey = false;
  if (secrets.file) {
    const stored = await readSecretFile(secrets.file);
    if (!stored) throw new Error(`secrets file ${secrets.file} disappeared`);
    const keys = stored.encryptionKeys.map((k) => ({ id: k.id, key: Buffer.from(k.key, "base64") }));
    const key = newDataKey(keys);
    stored.encryptionKeys.push({ id: key.id, key: key.key.toString("base64") });
    await writeSecretFile(secrets.file, stored);
    secrets = await loadSecrets(config, log);
    generatedKey = true;
  }
  const { checked, reencrypted } = await reencryptAll(db, secrets.keyring);
  return { activeKeyId: secrets.keyring.activeKeyId, generatedKey, checked, reencrypted };
}
