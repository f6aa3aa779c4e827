import type { Redis } from "ioredis";
import {
  type IRateLimiterOptions,
  type RateLimiterAbstract,
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
} from "rate-limiter-flexible";
import type { RateLimitConfig } from "../config.ts";
import { tooMany } from "../errors.ts";

export { RateLimiterRes };

const DAY = 24 * 3600;

/** Every limiter of the HTTP API. Counters live in Redis when the cluster has one, in memory otherwise. */
export interface Limiters {
  /** API requests per IP per minute */
  ip: RateLimiterAbstract;
  /** API requests per authenticated user per minute */
  user: RateLimiterAbstract;
  /** socket events per user per 10 s */
  socketUser: RateLimiterAbstract;
  /** chat messages per room per 10 s */
  chatRoom: RateLimiterAbstract;
  /** consecutive login failures per (account, IP); reset by a successful login */
  loginAccountIp: RateLimiterAbstract;
  /** login failures per IP over a day, whatever the account */
  loginIp: RateLimiterAbstract;
}

/**
 * The memory store expires a key with setTimeout, which cannot wait longer than 2^31-1 ms (~24.8 days): a longer
 * duration fires at once and the counter is forgotten after 1 ms. Memory counters are capped there.
 */
const MEMORY_MAX_DURATION_SEC = Math.floor((2 ** 31 - 1) / 1000);
const memoryLimiter = (opts: IRateLimiterOptions) =>
  new RateLimiterMemory({ ...opts, duration: Math.min(opts.duration ?? 1, MEMORY_MAX_DURATION_SEC) });

export function createLimiters(cfg: RateLimitConfig, redis?: Redis): Limiters {
  // With Redis, a memory "insurance" limiter takes over while Redis is unreachable: limits then hold per node
  // instead of failing (or failing open) cluster-wide.
  const make = (opts: IRateLimiterOptions): RateLimiterAbstract =>
    redis
      ? new RateLimiterRedis({ ...opts, storeClient: redis, insuranceLimiter: memoryLimiter(opts) })
      : memoryLimiter(opts);
  return {
    ip: make({ keyPrefix: "rl:ip", points: cfg.perIp, duration: 60 }),
    user: make({ keyPrefix: "rl:user", points: cfg.perUser, duration: 60 }),
    socketUser: make({ keyPrefix: "rl:socket:user", points: cfg.socketEventsPerUser, duration: 10 }),
    chatRoom: make({ keyPrefix: "rl:chat:room", points: cfg.chatPerRoom, duration: 10 }),
    loginAccountIp: make({
      keyPrefix: "rl:login:acct-ip",
      points: cfg.loginFailures,
      duration: 90 * DAY,
    }),
    loginIp: make({
      keyPrefix: "rl:login:ip",
      points: cfg.loginFailuresPerIp,
      duration: DAY,
    }),
  };
}

/** Headers of the IETF RateLimit draft (RateLimit-Limit/-Remaining/-Reset) plus Retry-After when refused. */
export function rateLimitHeaders(limit: number, res: RateLimiterRes, refused: boolean): Record<string, string> {
  const reset = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
  const headers: Record<string, string> = {
    "RateLimit-Limit": String(limit),
    "RateLimit-Remaining": String(Math.max(0, res.remainingPoints)),
    "RateLimit-Reset": String(reset),
  };
  if (refused) headers["Retry-After"] = String(reset);
  return headers;
}

/**
 * Consumes one point; returns the headers to send, or throws a 429 AppError carrying them in `retryAfter`.
 * Store errors (Redis down) fail open: availability beats a limiter outage, and the error is reported.
 */
export async function consume(
  limiter: RateLimiterAbstract,
  key: string,
  onStoreError: (err: unknown) => void,
): Promise<Record<string, string>> {
  try {
    const res = await limiter.consume(key);
    return rateLimitHeaders(limiter.points, res, false);
  } catch (err) {
    if (err instanceof RateLimiterRes) {
      const e = tooMany(err.msBeforeNext / 1000);
      throw Object.assign(e, { headers: rateLimitHeaders(limiter.points, err, true) });
    }
    onStoreError(err);
    return {};
  }
}
