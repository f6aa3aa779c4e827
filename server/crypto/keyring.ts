import { createCipheriv, createDecipheriv, createHmac, randomBytes } from "node:crypto";

/** One AES-256 data key and its id; the id is written into every ciphertext it makes. */
export interface DataKey {
  id: string;
  key: Buffer;
}

const VERSION = "v1";
const b64 = (b: Buffer) => b.toString("base64url");

/**
 * Field encryption (AES-256-GCM, random 96-bit IV, key id per ciphertext) and keyed blind indexes (HMAC-SHA256)
 * for looking up encrypted values. The last key is the active one; older keys only decrypt, until
 * `npm run keys:rotate` re-encrypts everything with the newest.
 */
export class Keyring {
  private readonly byId: Map<string, Buffer>;
  readonly activeKeyId: string;

  constructor(
    keys: DataKey[],
    private readonly indexKey: Buffer,
  ) {
    const active = keys.at(-1);
    if (!active) throw new Error("the keyring needs at least one key");
    for (const k of keys) {
      if (k.key.length !== 32) throw new Error(`encryption key ${k.id} must be 32 bytes`);
      if (!/^[A-Za-z0-9_-]{1,32}$/.test(k.id)) throw new Error(`encryption key id ${k.id} is not valid`);
    }
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
    this.activeKeyId = active.id;
  }

  /** `aad` binds the ciphertext to its place (e.g. `users.email`) so it cannot be moved to another column. */
  encrypt(plaintext: string, aad: string): string {
    const key = this.byId.get(this.activeKeyId) as Buffer;
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", key, iv);
    cipher.setAAD(Buffer.from(aad));
    const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()]);
    return `${VERSION}.${this.activeKeyId}.${b64(iv)}.${b64(body)}`;
  }

  decrypt(value: string, aad: string): string {
    const [version, keyId, iv, body] = value.split(".");
    if (version !== VERSION || !keyId || !iv || !body) throw new Error("not a ciphertext of ours");
    const key = this.byId.get(keyId);
    if (!key) throw new Error(`unknown encryption key ${keyId}`);
    const raw = Buffer.from(body, "base64url");
    const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64url"));
    decipher.setAAD(Buffer.from(aad));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([decipher.update(raw.subarray(0, raw.length - 16)), decipher.final()]).toString("utf8");
  }

  /** True when `value` was encrypted with an older key than the active one. */
  isStale(value: string): boolean {
    return value.split(".")[1] !== this.activeKeyId;
  }

  /** Deterministic keyed digest for equality lookups; `purpose` separates the indexes of different fields. */
  blindIndex(value: string, purpose: string): string {
    return createHmac("sha256", this.indexKey).update(purpose).update("\0").update(value).digest("base64url");
  }
}

/** Parses `id:base64key,id2:base64key` (the last is active). */
export function parseKeyList(text: string): DataKey[] {
  return text.split(",").map((part) => {
    const [id, key] = part.trim().split(":");
    if (!id || !key) throw new Error("ENCRYPTION_KEYS: expected id:base64key[,id:base64key...]");
    return { id, key: Buffer.from(key, "base64") };
  });
}

export function formatKeyList(keys: DataKey[]): string {
  return keys.map((k) => `${k.id}:${k.key.toString("base64")}`).join(",");
}

export function newDataKey(existing: DataKey[]): DataKey {
  const n = existing.length + 1;
  return { id: `k${n}-${randomBytes(3).toString("hex")}`, key: randomBytes(32) };
}
