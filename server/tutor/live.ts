import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";

/** What has been streamed of an answer so far. */
export interface AnswerSoFar {
  text: string;
  /** the `seq` of the last piece (0 before the first) */
  seq: number;
}

/**
 * The pieces of the answers being generated, readable from every node: a client that joins (or rejoins) a room
 * mid-answer reads the text so far here, after joining the room's channel, and gets the rest live. Every piece
 * is appended before it is broadcast, so nothing falls between the two (duplicates are told apart by `seq`).
 */
export interface AnswerLog {
  append(answerId: string, seq: number, text: string): Promise<void>;
  read(answerId: string): Promise<AnswerSoFar>;
  /** the answer is final and stored: forget it after a grace period (a joiner may be reading it) */
  finish(answerId: string): Promise<void>;
}

/**
 * One generation per room at a time, whichever node asks: a lease with an owner token, renewed while the
 * generation runs and lost if its node dies (another node then takes over the room's queue).
 */
export interface RoomLocks {
  acquire(key: string, ttlMs: number): Promise<string | null>;
  /** false when the lease was lost (expired and taken) */
  renew(key: string, token: string, ttlMs: number): Promise<boolean>;
  release(key: string, token: string): Promise<void>;
}

const GRACE_MS = 60_000;

export function memoryAnswerLog(): AnswerLog {
  const live = new Map<string, AnswerSoFar>();
  return {
    async append(answerId, seq, text) {
      const cur = live.get(answerId) ?? { text: "", seq: 0 };
      live.set(answerId, { text: cur.text + text, seq });
    },
    async read(answerId) {
      return live.get(answerId) ?? { text: "", seq: 0 };
    },
    async finish(answerId) {
      setTimeout(() => live.delete(answerId), GRACE_MS).unref();
    },
  };
}

/**
 * Each answer's pieces in a Redis stream (`dp:answer:<id>`), kept for an hour at most: a generation that
 * outlives its node leaves its partial text behind for the node that finalises it.
 */
export function redisAnswerLog(redis: Redis): AnswerLog {
  const key = (id: string) => `dp:answer:${id}`;
  return {
    async append(answerId, seq, text) {
      await redis
        .multi()
        .xadd(key(answerId), "*", "s", String(seq), "t", text)
        .pexpire(key(answerId), 3_600_000)
        .exec();
    },
    async read(answerId) {
      const entries = await redis.xrange(key(answerId), "-", "+");
      let text = "";
      let seq = 0;
      for (const [, fields] of entries) {
        const s = Number(fields[1]);
        // An entry appended twice (a retried write) is skipped by its seq.
        if (s <= seq) continue;
        seq = s;
        text += fields[3] ?? "";
      }
      return { text, seq };
    },
    async finish(answerId) {
      await redis.pexpire(key(answerId), GRACE_MS);
    },
  };
}

export function memoryLocks(): RoomLocks {
  const held = new Map<string, { token: string; until: number }>();
  const live = (key: string) => {
    const h = held.get(key);
    return h && h.until > Date.now() ? h : undefined;
  };
  return {
    async acquire(key, ttlMs) {
      if (live(key)) return null;
      const token = randomUUID();
      held.set(key, { token, until: Date.now() + ttlMs });
      return token;
    },
    async renew(key, token, ttlMs) {
      const h = live(key);
      if (h?.token !== token) return false;
      h.until = Date.now() + ttlMs;
      return true;
    },
    async release(key, token) {
      if (held.get(key)?.token === token) held.delete(key);
    },
  };
}

const RENEW = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;

/** `SET key token NX PX ttl`, renewed and released only by the token's holder (compare-and-set in Lua). */
export function redisLocks(redis: Redis): RoomLocks {
  const k = (key: string) => `dp:lock:${key}`;
  return {
    async acquire(key, ttlMs) {
      const token = randomUUID();
      return (await redis.set(k(key), token, "PX", ttlMs, "NX")) === "OK" ? token : null;
    },
    async renew(key, token, ttlMs) {
      return Number(await redis.eval(RENEW, 1, k(key), token, String(ttlMs))) === 1;
    },
    async release(key, token) {
      await redis.eval(RELEASE, 1, k(key), token);
    },
  };
}
