import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import type { AnswerSource } from "../../shared/schemas/tutor.ts";
import { BoundedMap } from "../bounded-map.ts";

/** What a cached answer replays. */
export interface CachedAnswer {
  text: string;
  sources: AnswerSource[];
  provider: string;
  model: string | null;
}

/** Answers to reuse for identical questions with the same context (rooms opt in with `tutorCache`). */
export interface AnswerCache {
  get(key: string): Promise<CachedAnswer | undefined>;
  set(key: string, value: CachedAnswer, ttlMs: number): Promise<void>;
}

/** A question as the cache compares it: Unicode-normalised, lower case, spaces collapsed, end punctuation dropped. */
export function normalizeQuestion(question: string): string {
  return question
    .normalize("NFKC")
    .toLowerCase()
    .replace(/\s+/g, " ")
    .replace(/[\s?!.…]+$/u, "")
    .trim();
}

/** The cache key: the normalised question and everything else that shapes the answer. */
export function answerCacheKey(parts: {
  question: string;
  language: string;
  kind: string;
  passageIds: string[];
  variant: string | null;
  provider: string;
  model: string | null;
}): string {
  return createHash("sha256")
    .update(JSON.stringify({ ...parts, question: normalizeQuestion(parts.question) }))
    .digest("hex");
}

export function memoryAnswerCache(max = 2000): AnswerCache {
  const entries = new BoundedMap<string, { value: CachedAnswer; until: number }>(max);
  return {
    async get(key) {
      const e = entries.get(key);
      if (!e) return undefined;
      if (e.until > Date.now()) return e.value;
      entries.delete(key);
      return undefined;
    },
    async set(key, value, ttlMs) {
      entries.set(key, { value, until: Date.now() + ttlMs });
    },
  };
}

/** Shared by every node: one key per entry, expiring on its own. */
export function redisAnswerCache(redis: Redis): AnswerCache {
  const k = (key: string) => `dp:tutor:cache:${key}`;
  return {
    async get(key) {
      const raw = await redis.get(k(key));
      return raw ? (JSON.parse(raw) as CachedAnswer) : undefined;
    },
    async set(key, value, ttlMs) {
      await redis.set(k(key), JSON.stringify(value), "PX", ttlMs);
    },
  };
}
