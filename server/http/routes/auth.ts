import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { deleteCookie, setCookie } from "hono/cookie";
import { ROLE_PERMISSIONS } from "../../../shared/permissions.ts";
import { AccessToken, LoginBody, Me, PasswordChangeBody, RegisterBody } from "../../../shared/schemas/auth.ts";
import type { UserRow } from "../../auth/sessions.ts";
import type { Deps } from "../../deps.ts";
import { AppError } from "../../errors.ts";
import { type AppContext, type AppEnv, auditContext, requireAuth } from "../context.ts";
import { cookieOptions, SESSION_COOKIE } from "../cookies.ts";
import { access, json, jsonBody, problems, publicAccess } from "../openapi.ts";

const tags = ["auth"];

/** Registration, login, logout, the current user, password change and access tokens. */
export function authRoutes(app: OpenAPIHono<AppEnv>, deps: Deps): void {
  const { accounts, sessions, tokens, audit, loginGuard, config } = deps;
  const production = config.env === "production";

  const me = (user: UserRow, via: "cookie" | "token"): Me => ({
    user: accounts.toPublic(user),
    permissions: [...ROLE_PERMISSIONS[user.role]],
    via,
  });

  async function startSession(c: AppContext, user: UserRow): Promise<void> {
    const meta = c.get("meta");
    const { token } = await sessions.create(user.id, { ip: meta.ip, userAgent: meta.userAgent });
    setCookie(c, SESSION_COOKIE(production), token, cookieOptions(production, config.session.maxAgeSec));
  }

  const register = createRoute({
    method: "post",
    path: "/api/v1/auth/register",
    tags,
    summary: "Create an account and start a session",
    ...publicAccess(),
    request: { body: jsonBody(RegisterBody) },
    responses: {
      201: json(Me, "Created; the session cookie is set"),
      ...problems("conflict"),
    },
  });
  app.openapi(register, async (c) => {
    const user = await accounts.register(c.req.valid("json"));
    await audit.append(auditContext(c, user.id), {
      action: "auth.register",
      outcome: "success",
      targetType: "user",
      targetId: user.id,
      details: { role: user.role },
    });
    await startSession(c, user);
    return c.json(me(user, "cookie"), 201);
  });

  const login = createRoute({
    method: "post",
    path: "/api/v1/auth/login",
    tags,
    summary: "Log in with email and password",
    ...publicAccess(),
    request: { body: jsonBody(LoginBody) },
    responses: {
      200: json(Me, "Logged in; the session cookie is set"),
      ...problems("invalid_credentials", "account_disabled", "locked_out"),
    },
  });
  app.openapi(login, async (c) => {
    const { email, password } = c.req.valid("json");
    const ip = c.get("meta").ip;
    const key = accounts.emailIndex(email);
    const fail = (reason: string, targetId?: string) =>
      audit.append(auditContext(c, null), {
        action: "auth.login",
        outcome: "failure",
        targetType: "user",
        targetId,
        details: { reason },
      });
    try {
      await loginGuard.check(key, ip);
    } catch (err) {
      await fail("locked_out");
      throw err;
    }
    let result: Awaited<ReturnType<typeof accounts.authenticate>>;
    try {
      result = await accounts.authenticate(email, password);
    } catch (err) {
      if (err instanceof AppError) await fail(err.code, (err as { triedId?: string }).triedId);
      throw err;
    }
    if (!result.user) {
      await fail("invalid_credentials", result.triedId ?? undefined);
      await loginGuard.failed(key, ip);
      throw new AppError("invalid_credentials");
    }
    const user = result.user;
    await loginGuard.succeeded(key, ip);
    await startSession(c, user);
    await audit.append(auditContext(c, user.id), {
      action: "auth.login",
      outcome: "success",
      targetType: "user",
      targetId: user.id,
    });
    return c.json(me(user, "cookie"), 200);
  });

  const logout = createRoute({
    method: "post",
    path: "/api/v1/auth/logout",
    tags,
    summary: "End the current session",
    ...access("account:self", audit),
    responses: { 204: { description: "Logged out; the cookie is cleared" }, ...problems("unauthenticated") },
  });
  app.openapi(logout, async (c) => {
    const auth = requireAuth(c);
    await sessions.revoke(auth.session.id);
    deleteCookie(c, SESSION_COOKIE(production), cookieOptions(production));
    await audit.append(auditContext(c), {
      action: "auth.logout",
      outcome: "success",
      targetType: "session",
      targetId: auth.session.id,
    });
    return c.body(null, 204);
  });

  const current = createRoute({
    method: "get",
    path: "/api/v1/auth/me",
    tags,
    summary: "The current user and their permissions",
    ...access("account:self", audit),
    responses: {
      200: json(Me, "The current user"),
      ...problems("unauthenticated"),
    },
  });
  app.openapi(current, (c) => {
    const auth = requireAuth(c);
    return c.json(me(auth.user, auth.via), 200);
  });

  const password = createRoute({
    method: "post",
    path: "/api/v1/auth/password",
    tags,
    summary: "Change the password; every session is revoked and a fresh one started",
    ...access("account:self", audit),
    request: { body: jsonBody(PasswordChangeBody) },
    responses: { 204: { description: "Changed" }, ...problems("unauthenticated", "invalid_credentials") },
  });
  app.openapi(password, async (c) => {
    const auth = requireAuth(c);
    const body = c.req.valid("json");
    try {
      await accounts.changePassword(auth.user, body.currentPassword, body.newPassword);
    } catch (err) {
      if (err instanceof AppError) {
        await audit.append(auditContext(c), {
          action: "auth.password_change",
          outcome: "failure",
          targetType: "user",
          targetId: auth.user.id,
          details: { reason: err.code },
        });
      }
      throw err;
    }
    const revoked = await sessions.revokeAll(auth.user.id);
    await startSession(c, auth.user);
    await audit.append(auditContext(c), {
      action: "auth.password_change",
      outcome: "success",
      targetType: "user",
      targetId: auth.user.id,
      details: { revokedSessions: revoked },
    });
    return c.body(null, 204);
  });

  const token = createRoute({
    method: "post",
    path: "/api/v1/auth/token",
    tags,
    summary: "Issue a short-lived access token (JWT) bound to the current session",
    ...access("account:self", audit),
    responses: {
      200: json(AccessToken, "A bearer token"),
      ...problems("unauthenticated"),
    },
  });
  app.openapi(token, async (c) => {
    const auth = requireAuth(c);
    const issued = await tokens.issue({ userId: auth.user.id, sessionId: auth.session.id });
    await audit.append(auditContext(c), {
      action: "auth.token_issue",
      outcome: "success",
      targetType: "session",
      targetId: auth.session.id,
      details: { expiresAt: issued.expiresAt.toISOString() },
    });
    return c.json({ token: issued.token, expiresAt: issued.expiresAt.toISOString() }, 200);
  });
}
