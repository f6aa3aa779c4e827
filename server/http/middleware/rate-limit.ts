import type { MiddlewareHandler } from "hono";
import type { RateLimiterAbstract } from "rate-limiter-flexible";
import type { Logger } from "../../log.ts";
import { consume } from "../../ratelimit/limiters.ts";
import { type AppEnv, setHeader } from "../context.ts";

/**
 * Consumes a point per request, keyed by the caller's IP (`by: "ip"`) or, for authenticated callers, their
 * user id (`by: "user"`). Every answer carries the RateLimit headers of the most constrained limiter; they
 * are set before the handler runs, which keeps node-server on its fast path.
 */
export function rateLimit(limiter: RateLimiterAbstract, by: "ip" | "user", log: Logger): MiddlewareHandler<AppEnv> {
  const onStoreError = (err: unknown) => log.error({ err }, "rate limiter store unavailable; request allowed");
  return async (c, next) => {
    const key = by === "ip" ? c.get("meta").ip : c.get("auth")?.user.id;
    if (!key) return next();
    const headers = await consume(limiter, key, onStoreError);
    const remaining = Number(headers["RateLimit-Remaining"]);
    const tightest = c.get("rateRemaining");
    if (!Number.isNaN(remaining) && (tightest === undefined || remaining <= tightest)) {
      c.set("rateRemaining", remaining);
      for (const [k, v] of Object.entries(headers)) setHeader(c, k, v);
    }
    return next();
  };
}
