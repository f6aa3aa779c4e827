import type { MiddlewareHandler } from "hono";
import { deleteCookie, getCookie } from "hono/cookie";
import { can, type Permission } from "../../../shared/permissions.ts";
import type { AuditLog } from "../../audit/audit-log.ts";
import type { SessionService } from "../../auth/sessions.ts";
import type { TokenService } from "../../auth/tokens.ts";
import { AppError, forbidden, unauthenticated } from "../../errors.ts";
import { type AppEnv, auditContext } from "../context.ts";
import { cookieOptions, SESSION_COOKIE } from "../cookies.ts";

/**
 * Resolves the caller from `Authorization: Bearer <jwt>` or the session cookie. A bad bearer token is a 401
 * at once (no silent fall-back to the cookie); a dead cookie is cleared and the request goes on anonymous.
 */
export function resolveAuth(
  sessions: SessionService,
  tokens: TokenService,
  production: boolean,
): MiddlewareHandler<AppEnv> {
  const cookieName = SESSION_COOKIE(production);
  return async (c, next) => {
    const header = c.req.header("authorization");
    if (header !== undefined) {
      const [scheme, token] = header.split(" ");
      if (scheme?.toLowerCase() !== "bearer" || !token)
        throw unauthenticated("Expected `Authorization: Bearer <token>`");
      const claims = await tokens.verify(token);
      const found = claims && (await sessions.validateId(claims.sessionId));
      if (!found || !claims || found.user.id !== claims.userId) {
        throw new AppError("session_expired", "The access token is invalid, expired or revoked");
      }
      c.set("auth", { ...found, via: "token" });
      return next();
    }
    const cookie = getCookie(c, cookieName);
    if (cookie) {
      const found = await sessions.validateToken(cookie);
      if (found) c.set("auth", { ...found, via: "cookie" });
      else deleteCookie(c, cookieName, cookieOptions(production));
    }
    return next();
  };
}

/**
 * Route guard: 401 without credentials, 403 when the caller's role lacks `permission` (in the table of
 * shared/permissions.ts). Refusals of authenticated callers are audited.
 */
export function requirePermission(permission: Permission, audit: AuditLog): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const auth = c.get("auth");
    if (!auth) throw unauthenticated();
    if (!can(auth.user.role, permission)) {
      await audit.append(auditContext(c), {
        action: "access.denied",
        outcome: "denied",
        // the decoded path may hold U+0000 (`%00`), which PostgreSQL jsonb refuses: the refusal must still be audited
        details: { method: c.req.method, path: c.req.path.replaceAll("\u0000", "\uFFFD"), permission },
      });
      throw forbidden(`This needs the ${permission} permission`);
    }
    return next();
  };
}
