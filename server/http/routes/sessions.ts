import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { SessionIdParam, SessionList } from "../../../shared/schemas/auth.ts";
import type { Deps } from "../../deps.ts";
import { notFound } from "../../errors.ts";
import { type AppEnv, auditContext, requireAuth } from "../context.ts";
import { access, json, problems } from "../openapi.ts";

const tags = ["auth"];

/** One's own sessions: list them, revoke one. */
export function sessionRoutes(app: OpenAPIHono<AppEnv>, { sessions, audit }: Deps): void {
  const list = createRoute({
    method: "get",
    path: "/api/v1/auth/sessions",
    tags,
    summary: "List my sessions",
    ...access("account:self", audit),
    responses: {
      200: json(SessionList, "My sessions"),
      ...problems("unauthenticated"),
    },
  });
  app.openapi(list, async (c) => {
    const auth = requireAuth(c);
    const rows = await sessions.list(auth.user.id);
    const items = rows.map((s) => ({
      id: s.id,
      createdAt: s.createdAt.toISOString(),
      lastUsedAt: s.lastUsedAt.toISOString(),
      expiresAt: sessions.idleExpiry(s).toISOString(),
      ip: s.ip,
      userAgent: s.userAgent,
      current: s.id === auth.session.id,
    }));
    return c.json({ items }, 200);
  });

  const revoke = createRoute({
    method: "delete",
    path: "/api/v1/auth/sessions/{id}",
    tags,
    summary: "Revoke one of my sessions (and the access tokens it issued)",
    ...access("account:self", audit),
    request: { params: SessionIdParam },
    responses: { 204: { description: "Revoked" }, ...problems("unauthenticated", "not_found") },
  });
  app.openapi(revoke, async (c) => {
    const auth = requireAuth(c);
    const { id } = c.req.valid("param");
    if (!(await sessions.revokeOwn(auth.user.id, id))) throw notFound("Session");
    await audit.append(auditContext(c), {
      action: "auth.session_revoke",
      outcome: "success",
      targetType: "session",
      targetId: id,
    });
    return c.body(null, 204);
  });
}
