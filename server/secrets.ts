import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "./config.ts";
import { type DataKey, Keyring, newDataKey, parseKeyList } from "./crypto/keyring.ts";
import type { Logger } from "./log.ts";

/** Keys the server runs with, whatever their source. */
export interface Secrets {
  jwtKey: Uint8Array;
  keyring: Keyring;
  /** where missing secrets were generated, if anywhere (the rotation command writes new keys there) */
  file?: string;
}

export interface SecretFile {
  jwtSecret: string;
  blindIndexKey: string;
  encryptionKeys: { id: string; key: string }[];
}

export const SECRETS_FILE = "secrets.json";

/**
 * Resolves the signing and encryption keys. Keys given in the environment win. Missing ones are generated
 * once into `<DATA_DIR>/secrets.json` (mode 0600) with a warning, so that a restart keeps sessions valid and
 * data readable. In production a missing key stops the server instead.
 */
export async function loadSecrets(config: Config, log: Logger): Promise<Secrets> {
  const s = config.secrets;
  const missing = [
    !s.jwtSecret && "JWT_SECRET",
    !s.encryptionKeys && "ENCRYPTION_KEYS",
    !s.blindIndexKey && "BLIND_INDEX_KEY",
  ].filter((x): x is string => typeof x === "string");

  if (missing.length > 0 && config.env === "production") {
    throw new Error(`Production needs these secrets set in the environment: ${missing.join(", ")}`);
  }

  let stored: SecretFile | undefined;
  let file: string | undefined;
  if (missing.length > 0) {
    if (config.dataDir === "memory") {
      stored = generate();
    } else {
      file = join(config.dataDir, SECRETS_FILE);
      stored = await readSecretFile(file);
      if (!stored) {
        stored = generate();
        await writeSecretFile(file, stored);
        log.warn(
          { file, generated: missing },
          "generated missing secrets into the data directory; set them in the environment for production",
        );
      }
    }
  }

  const keys: DataKey[] = s.encryptionKeys
    ? parseKeyList(s.encryptionKeys)
    : (stored as SecretFile).encryptionKeys.map((k) => ({ id: k.id, key: Buffer.from(k.key, "base64") }));
  const jwtSecret = s.jwtSecret ?? (stored as SecretFile).jwtSecret;
  const indexKey = s.blindIndexKey ?? (stored as SecretFile).blindIndexKey;
  return {
    jwtKey: new TextEncoder().encode(jwtSecret),
    keyring: new Keyring(keys, Buffer.from(indexKey)),
    ...(file && !s.encryptionKeys ? { file } : {}),
  };
}

function generate(): SecretFile {
  const key = newDataKey([]);
  return {
    jwtSecret: randomBytes(48).toString("base64url"),
    blindIndexKey: randomBytes(48).toString("base64url"),
    encryptionKeys: [{ id: key.id, key: key.key.toString("base64") }],
  };
}

export async function readSecretFile(file: string): Promise<SecretFile | undefined> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as SecretFile;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

export async function writeSecretFile(file: string, content: SecretFile): Promise<void> {
  await mkdir(join(file, ".."), { recursive: true });
  await writeFile(file, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
}
