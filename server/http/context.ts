import type { ServerResponse } from "node:http";
import type { Context } from "hono";
import type { AuditContext, AuditLog } from "../audit/audit-log.ts";
import type { SessionRow, UserRow } from "../auth/sessions.ts";
import { AppError, unauthenticated } from "../errors.ts";

/** Who is calling, resolved by the auth middleware. */
export interface AuthState {
  user: UserRow;
  session: SessionRow;
  via: "cookie" | "token";
}

/** Facts about the request, resolved once by the context middleware. */
export interface RequestMeta {
  requestId: string;
  ip: string;
  userAgent: string | null;
}

export type AppEnv = {
  /** node-server's bindings; absent when the app is called through `app.fetch` directly */
  Bindings: { outgoing?: ServerResponse };
  Variables: {
    meta: RequestMeta;
    auth: AuthState | undefined;
    /** remaining points of the most constrained rate limiter so far (its headers are the ones sent) */
    rateRemaining: number | undefined;
  };
};

export type AppContext = Context<AppEnv>;

/** The caller, or a 401. */
export function requireAuth(c: AppContext): AuthState {
  const auth = c.get("auth");
  if (!auth) throw unauthenticated();
  return auth;
}

/** The audit "who and from where" of this request. */
export function auditContext(c: AppContext, actorId?: string | null): AuditContext {
  const meta = c.get("meta");
  return {
    actorId: actorId === undefined ? (c.get("auth")?.user.id ?? null) : actorId,
    ip: meta.ip,
    userAgent: meta.userAgent,
    requestId: meta.requestId,
  };
}

/**
 * Runs a moderation action; a refusal by the domain (an AppError) is audited as `denied` (forbidden, not
 * found) or `failure` before it is rethrown. The caller audits the success with what it returned.
 */
export async function auditRefusal<T>(
  audit: AuditLog,
  c: AppContext,
  action: string,
  target: { targetType: string; targetId: string },
  details: Record<string, unknown>,
  run: () => Promise<T>,
): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof AppError) {
      const denied = err.code === "forbidden" || err.code === "not_found";
      await audit.append(auditContext(c), {
        action,
        outcome: denied ? "denied" : "failure",
        ...target,
        details: { ...details, reason: err.code },
      });
    }
    throw err;
  }
}

/**
 * Sets a response header. On node-server it goes straight onto Node's ServerResponse, which merges it with
 * the headers of whatever response the route returns: a `c.header()` call would make Hono build a full
 * WHATWG Headers object for every response (about a tenth of the CPU of a small authenticated request).
 */
export function setHeader(c: Context<AppEnv>, name: string, value: string): void {
  const out = c.env?.outgoing;
  if (out && !out.headersSent) out.setHeader(name, value);
  else c.header(name, value);
}
