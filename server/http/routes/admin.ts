import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import {
  AuditPage,
  AuditQuery,
  AuditVerification,
  UserListQuery,
  UserPage,
  UserPatch,
} from "../../../shared/schemas/admin.ts";
import { User } from "../../../shared/schemas/auth.ts";
import { IdParam } from "../../../shared/schemas/common.ts";
import type { Deps } from "../../deps.ts";
import { AppError } from "../../errors.ts";
import { type AppEnv, auditContext } from "../context.ts";
import { access, json, jsonBody, problems } from "../openapi.ts";

const tags = ["admin"];

/** Admin: user management and the audit log. Every admin action is itself audited. */
export function adminRoutes(app: OpenAPIHono<AppEnv>, { users, audit }: Deps): void {
  const listUsers = createRoute({
    method: "get",
    path: "/api/v1/admin/users",
    tags,
    summary: "List and search users (display name substring, or exact email)",
    ...access("users:read", audit),
    request: { query: UserListQuery },
    responses: { 200: json(UserPage, "A page of users"), ...problems("unauthenticated", "forbidden") },
  });
  app.openapi(listUsers, async (c) => {
    const q = c.req.valid("query");
    const page = await users.list(q);
    await audit.append(auditContext(c), {
      action: "admin.users_list",
      outcome: "success",
      details: { page: q.page, filtered: Boolean(q.q || q.role || q.disabled !== undefined) },
    });
    return c.json(page, 200);
  });

  const patchUser = createRoute({
    method: "patch",
    path: "/api/v1/admin/users/{id}",
    tags,
    summary: "Change a user's role, or disable/enable the account (disabling revokes every session)",
    ...access("users:manage", audit),
    request: { params: IdParam, body: jsonBody(UserPatch) },
    responses: {
      200: json(User, "The updated user"),
      ...problems("unauthenticated", "forbidden", "not_found", "last_admin"),
    },
  });
  app.openapi(patchUser, async (c) => {
    const { id } = c.req.valid("param");
    const patch = c.req.valid("json");
    const target = { targetType: "user", targetId: id };
    try {
      const change = await users.update(id, patch);
      const { user, before } = change;
      if (patch.role !== undefined && patch.role !== before.role) {
        await audit.append(auditContext(c), {
          action: "admin.user_role",
          outcome: "success",
          ...target,
          details: { from: before.role, to: user.role },
        });
      }
      if (patch.disabled !== undefined && patch.disabled !== before.disabled) {
        await audit.append(auditContext(c), {
          action: patch.disabled ? "admin.user_disable" : "admin.user_enable",
          outcome: "success",
          ...target,
          details: { revokedSessions: change.revokedSessions },
        });
      }
      return c.json(user, 200);
    } catch (err) {
      if (err instanceof AppError) {
        await audit.append(auditContext(c), {
          action: "admin.user_update",
          outcome: "failure",
          ...target,
          details: { reason: err.code, ...patch },
        });
      }
      throw err;
    }
  });

  const listAudit = createRoute({
    method: "get",
    path: "/api/v1/admin/audit",
    tags,
    summary: "Read the audit log, newest first (filters, cursor `before`)",
    ...access("audit:read", audit),
    request: { query: AuditQuery },
    responses: { 200: json(AuditPage, "A page of audit entries"), ...problems("unauthenticated", "forbidden") },
  });
  app.openapi(listAudit, async (c) => {
    const q = c.req.valid("query");
    const page = await audit.list(q);
    await audit.append(auditContext(c), {
      action: "admin.audit_read",
      outcome: "success",
      details: { before: q.before ?? null },
    });
    return c.json(page, 200);
  });

  const verify = createRoute({
    method: "get",
    path: "/api/v1/admin/audit/verify",
    tags,
    summary: "Walk the audit hash chain and report the first broken entry",
    ...access("audit:read", audit),
    responses: { 200: json(AuditVerification, "The verification result"), ...problems("unauthenticated", "forbidden") },
  });
  app.openapi(verify, async (c) => {
    const result = await audit.verify();
    await audit.append(auditContext(c), {
      action: "admin.audit_verify",
      outcome: result.ok ? "success" : "failure",
      details: { ...result },
    });
    return c.json(result, 200);
  });
}
