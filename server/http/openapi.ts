import type { MiddlewareHandler } from "hono";
import { ERROR_CODES, type ErrorCode } from "../../shared/errors.ts";
import type { Permission } from "../../shared/permissions.ts";
import { Problem } from "../../shared/schemas/common.ts";
import type { AuditLog } from "../audit/audit-log.ts";
import type { AppEnv } from "./context.ts";
import { requirePermission } from "./middleware/auth.ts";

/** The OpenAPI extension naming the permission a route needs (`public` for open routes). */
export const PERMISSION_EXTENSION = "x-permission";
/** The OpenAPI extension giving a route's body limit in bytes where it is not the server's default. */
export const BODY_LIMIT_EXTENSION = "x-body-limit";

const problem = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: Problem } },
});

/** Problem responses for the given codes, grouped by HTTP status, for a route's `responses`. */
export function problems(...codes: ErrorCode[]) {
  const byStatus: Record<number, ReturnType<typeof problem>> = {};
  for (const code of ["invalid_input", "rate_limited", "internal", ...codes] as ErrorCode[]) {
    const status = ERROR_CODES[code];
    const prev = byStatus[status]?.description;
    byStatus[status] = problem(prev ? `${prev}, ${code}` : code);
  }
  return byStatus;
}

/** An open route: no credentials needed (listed as such for the authorisation-matrix test). */
export function publicAccess(): { security: SecurityRequirementObject[]; [PERMISSION_EXTENSION]: "public" } {
  return { security: [], [PERMISSION_EXTENSION]: "public" };
}

/**
 * The security part of a route: who may call it, as OpenAPI `security` plus our `x-permission` extension
 * (read by the authorisation-matrix test), and the middleware that enforces it.
 */
export function access(permission: Permission, audit: AuditLog) {
  const security: SecurityRequirementObject[] = [{ cookieAuth: [] }, { bearerAuth: [] }];
  const middleware: MiddlewareHandler<AppEnv>[] = [requirePermission(permission, audit)];
  return { security, [PERMISSION_EXTENSION]: permission, middleware };
}

type SecurityRequirementObject = Record<string, string[]>;

/** A JSON request body that must be present and be JSON. */
/** A JSON response of a route, for its `responses`. */
export const json = <T>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

export function jsonBody<T>(schema: T) {
  return { content: { "application/json": { schema } }, required: true } as const;
}
