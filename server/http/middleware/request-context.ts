import { randomUUID } from "node:crypto";
import { getConnInfo } from "@hono/node-server/conninfo";
import type { MiddlewareHandler } from "hono";
import { LIMITS } from "../../../shared/limits.ts";
import type { Logger } from "../../log.ts";
import { type AppEnv, setHeader } from "../context.ts";

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

function clientIp(c: Parameters<MiddlewareHandler<AppEnv>>[0], trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = c.req.header("x-forwarded-for")?.split(",")[0]?.trim();
    if (forwarded) return forwarded.slice(0, 64);
  }
  try {
    return getConnInfo(c).remote.address ?? "unknown";
  } catch {
    return "unknown";
  }
}

/**
 * Request id (a sane incoming `X-Request-Id` is kept, else a new UUID), client IP, user agent, and one JSON log
 * line per request with method, route, status and duration. Bodies, cookies and tokens are never logged.
 */
export function requestContext(log: Logger, trustProxy: boolean): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now();
    const incoming = c.req.header("x-request-id");
    const requestId = incoming && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    c.set("meta", {
      requestId,
      ip: clientIp(c, trustProxy),
      userAgent: c.req.header("user-agent")?.slice(0, LIMITS.userAgentMax) ?? null,
    });
    c.set("auth", undefined);
    // Headers go out before the handler runs: changing a response afterwards costs node-server its fast path.
    setHeader(c, "X-Request-Id", requestId);
    await next();
    if (log.isLevelEnabled("info")) {
      log.info({
        requestId,
        method: c.req.method,
        route: c.req.routePath,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round((performance.now() - started) * 10) / 10,
        userId: c.get("auth")?.user.id,
      });
    }
  };
}
