import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { AppError } from "../../errors.ts";
import { type AppEnv, setHeader } from "../context.ts";

/** CSP for the Svelte client: everything from our own origin, no inline script or style, no framing. */
export const APP_CSP = {
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", "data:"],
  connectSrc: ["'self'"],
  fontSrc: ["'self'"],
  objectSrc: ["'none'"],
  baseUri: ["'self'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
};

const cspValue = (csp: Record<string, string[]>) =>
  Object.entries(csp)
    .map(([k, v]) => `${k.replace(/[A-Z]/g, (m) => `-${m.toLowerCase()}`)} ${v.join(" ")}`)
    .join("; ");

/**
 * Secure headers on every response; HSTS only in production, where we are behind TLS. The header set is
 * computed once and written before the handler runs (a route may still override one, as /api/docs does for
 * its CSP); touching a response after the handler would cost node-server its fast path.
 */
export function securityHeaders(production: boolean): MiddlewareHandler<AppEnv> {
  const headers: [string, string][] = [
    ["Content-Security-Policy", cspValue(APP_CSP)],
    ["X-Content-Type-Options", "nosniff"],
    ["X-Frame-Options", "DENY"],
    ["Referrer-Policy", "strict-origin-when-cross-origin"],
    ["Cross-Origin-Opener-Policy", "same-origin"],
    ["Cross-Origin-Resource-Policy", "same-origin"],
    ["Origin-Agent-Cluster", "?1"],
    ["X-DNS-Prefetch-Control", "off"],
    ["X-Permitted-Cross-Domain-Policies", "none"],
  ];
  if (production) headers.push(["Strict-Transport-Security", "max-age=31536000; includeSubDomains"]);
  return async (c, next) => {
    for (const [k, v] of headers) setHeader(c, k, v);
    return next();
  };
}

/**
 * CORS for the allow-listed origins only, with credentials. Same-origin calls need no CORS at all, and a
 * request without `Origin` skips the CORS middleware (which would rewrite `Vary` after the handler).
 */
export function corsPolicy(allowed: string[]): MiddlewareHandler<AppEnv> {
  const set = new Set(allowed);
  const handler = cors({
    origin: (origin) => (set.has(origin) ? origin : null),
    credentials: true,
    allowMethods: ["GET", "POST", "PUT", "PATCH", "DELETE"],
    allowHeaders: ["Content-Type", "Authorization", "X-Request-Id"],
    exposeHeaders: ["X-Request-Id", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"],
    maxAge: 600,
  });
  return async (c, next) => {
    if (c.req.header("origin") === undefined) {
      setHeader(c, "Vary", "Origin");
      return next();
    }
    return handler(c, next);
  };
}

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * CSRF protection for unsafe methods. A browser always says where a request comes from (Origin, or
 * Sec-Fetch-Site): a cross-site one is refused unless its origin is allow-listed. A cookie-authenticated
 * request that carries neither header is refused too; non-browser clients use Bearer tokens.
 */
export function csrfProtection(allowed: string[]): MiddlewareHandler<AppEnv> {
  const set = new Set(allowed);
  return async (c, next) => {
    if (SAFE.has(c.req.method)) return next();
    const origin = c.req.header("origin");
    const site = c.req.header("sec-fetch-site");
    const host = c.req.header("host");
    if (origin !== undefined) {
      let sameOrigin = false;
      try {
        sameOrigin = origin !== "null" && new URL(origin).host === host;
      } catch {
        sameOrigin = false;
      }
      if (!sameOrigin && !set.has(origin)) throw new AppError("csrf", "Cross-site request refused");
    } else if (site !== undefined) {
      if (site !== "same-origin" && site !== "none") throw new AppError("csrf", "Cross-site request refused");
    } else if (c.get("auth")?.via === "cookie") {
      throw new AppError("csrf", "Cookie-authenticated requests must come from a browser page of this site");
    }
    return next();
  };
}
