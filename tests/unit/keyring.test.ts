import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type DataKey, formatKeyList, Keyring, newDataKey, parseKeyList } from "../../server/crypto/keyring.ts";

const key = (id: string): DataKey => ({ id, key: randomBytes(32) });
const indexKey = randomBytes(32);

/** Flips one bit of the base64url segment `segment` (2 = IV, 3 = ciphertext+tag) of a ciphertext. */
function flip(value: string, segment: number, byte = 0): string {
  const parts = value.split(".");
  const raw = Buffer.from(parts[segment] as string, "base64url");
  raw[byte] = (raw[byte] as number) ^ 0x01;
  parts[segment] = raw.toString("base64url");
  return parts.join(".");
}

describe("Keyring encryption", () => {
  const k1 = key("k1");
  const ring = new Keyring([k1], indexKey);

  it("round-trips a value, tagged with version and key id", () => {
    const enc = ring.encrypt("ada@example.com", "users.email");
    expect(enc.startsWith("v1.k1.")).toBe(true);
    expect(enc).not.toContain("ada");
    expect(ring.decrypt(enc, "users.email")).toBe("ada@example.com");
    expect(ring.decrypt(ring.encrypt("", "x"), "x")).toBe("");
  });

  it("uses a fresh IV every time", () => {
    const values = Array.from({ length: 50 }, () => ring.encrypt("same plaintext", "aad"));
    expect(new Set(values).size).toBe(50);
    expect(new Set(values.map((v) => v.split(".")[2])).size).toBe(50);
    for (const v of values) expect(ring.decrypt(v, "aad")).toBe("same plaintext");
  });

  it("binds the ciphertext to its AAD", () => {
    const enc = ring.encrypt("secret", "users.email");
    expect(() => ring.decrypt(enc, "users.display_name")).toThrow();
    expect(() => ring.decrypt(enc, "")).toThrow();
  });

  it("refuses tampered ciphertexts, IVs and tags", () => {
    const enc = ring.encrypt("a value worth protecting", "aad");
    const bodyLength = Buffer.from(enc.split(".")[3] as string, "base64url").length;
    expect(() => ring.decrypt(flip(enc, 3, 0), "aad")).toThrow();
    expect(() => ring.decrypt(flip(enc, 3, bodyLength - 1), "aad")).toThrow(); // the auth tag
    expect(() => ring.decrypt(flip(enc, 2, 0), "aad")).toThrow();
    const parts = enc.split(".");
    expect(() => ring.decrypt([...parts.slice(0, 3), (parts[3] as string).slice(0, -4)].join("."), "aad")).toThrow();
    expect(() => ring.decrypt("not a ciphertext", "aad")).toThrow(/not a ciphertext/);
    expect(() => ring.decrypt(`v2.${parts.slice(1).join(".")}`, "aad")).toThrow(/not a ciphertext/);
  });

  it("refuses a ciphertext made with a key it does not hold", () => {
    const other = new Keyring([key("k9")], indexKey);
    expect(() => ring.decrypt(other.encrypt("x", "aad"), "aad")).toThrow(/unknown encryption key k9/);
    // Same id, different key material: authentication fails.
    const impostor = new Keyring([key("k1")], indexKey);
    expect(() => ring.decrypt(impostor.encrypt("x", "aad"), "aad")).toThrow();
  });

  it("keeps decrypting old values after rotation and marks them stale", () => {
    const k2 = key("k2");
    const old = ring.encrypt("before rotation", "aad");
    const rotated = new Keyring([k1, k2], indexKey);
    expect(rotated.activeKeyId).toBe("k2");
    expect(rotated.decrypt(old, "aad")).toBe("before rotation");
    expect(rotated.isStale(old)).toBe(true);
    const fresh = rotated.encrypt("after rotation", "aad");
    expect(fresh.startsWith("v1.k2.")).toBe(true);
    expect(rotated.isStale(fresh)).toBe(false);
    expect(ring.isStale(old)).toBe(false);
    // The old keyring cannot read what the new key wrote.
    expect(() => ring.decrypt(fresh, "aad")).toThrow(/unknown encryption key k2/);
  });

  it("refuses invalid keys", () => {
    expect(() => new Keyring([], indexKey)).toThrow(/at least one key/);
    expect(() => new Keyring([{ id: "k1", key: randomBytes(16) }], indexKey)).toThrow(/32 bytes/);
    expect(() => new Keyring([{ id: "bad id!", key: randomBytes(32) }], indexKey)).toThrow(/not valid/);
    expect(() => new Keyring([{ id: "has.dot", key: randomBytes(32) }], indexKey)).toThrow(/not valid/);
  });

  it("round-trips arbitrary unicode strings and AADs (property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 300 }), fc.string({ unit: "binary" }), (plain, aad) => {
        const enc = ring.encrypt(plain, aad);
        expect(ring.decrypt(enc, aad)).toBe(plain);
        expect(enc.split(".")).toHaveLength(4);
      }),
      { numRuns: 300 },
    );
  });
});

describe("blind index", () => {
  const ring = new Keyring([key("k1")], indexKey);

  it("is deterministic, keyed, and separated by purpose", () => {
    const a = ring.blindIndex("ada@example.com", "users.email");
    expect(ring.blindIndex("ada@example.com", "users.email")).toBe(a);
    expect(a).not.toContain("ada");
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(ring.blindIndex("ada@example.com", "users.name")).not.toBe(a);
    expect(ring.blindIndex("bob@example.com", "users.email")).not.toBe(a);
    // Same data keys, another index key: another index.
    expect(new Keyring([key("k1")], randomBytes(32)).blindIndex("ada@example.com", "users.email")).not.toBe(a);
    // The data keys do not matter, so rotation leaves indexes alone.
    expect(new Keyring([key("k1"), key("k2")], indexKey).blindIndex("ada@example.com", "users.email")).toBe(a);
  });

  it("cannot be confused by moving bytes between purpose and value", () => {
    expect(ring.blindIndex("b", "a")).not.toBe(ring.blindIndex("", "ab"));
    expect(ring.blindIndex("bc", "a")).not.toBe(ring.blindIndex("c", "ab"));
  });
});

describe("key lists", () => {
  it("round-trips through formatKeyList and parseKeyList", () => {
    const keys = [key("k1"), key("k2-abc"), key("K_3")];
    const parsed = parseKeyList(formatKeyList(keys));
    expect(parsed.map((k) => k.id)).toEqual(["k1", "k2-abc", "K_3"]);
    parsed.forEach((k, i) => {
      expect(k.key.equals(keys[i]?.key as Buffer)).toBe(true);
    });
    // Spaces around entries are tolerated; the last key is the active one.
    const spaced = formatKeyList(keys).split(",").join(" , ");
    expect(new Keyring(parseKeyList(spaced), indexKey).activeKeyId).toBe("K_3");
  });

  it("round-trips generated keys (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), (n) => {
        const keys: DataKey[] = [];
        for (let i = 0; i < n; i++) keys.push(newDataKey(keys));
        const ring = new Keyring(parseKeyList(formatKeyList(keys)), indexKey);
        expect(ring.activeKeyId).toBe(keys.at(-1)?.id);
        const enc = new Keyring(keys, indexKey).encrypt("x", "y");
        expect(ring.decrypt(enc, "y")).toBe("x");
      }),
      { numRuns: 30 },
    );
  });

  it("names ENCRYPTION_KEYS when an entry is malformed", () => {
    for (const bad of ["", "k1", "k1:", ":AAAA", "k1:AAAA,", "k1:AAAA,,k2:BBBB", "k1;AAAA"]) {
      expect(() => parseKeyList(bad), bad).toThrow(/ENCRYPTION_KEYS/);
    }
  });

  it("lets the keyring refuse keys of the wrong length", () => {
    expect(() => new Keyring(parseKeyList("k1:c2hvcnQ="), indexKey)).toThrow(/32 bytes/);
  });

  it("generates distinct, valid keys", () => {
    const a = newDataKey([]);
    const b = newDataKey([a]);
    expect(a.id).toMatch(/^k1-[0-9a-f]{6}$/);
    expect(b.id).toMatch(/^k2-[0-9a-f]{6}$/);
    expect(a.key).toHaveLength(32);
    expect(a.key.equals(b.key)).toBe(false);
  });
});
