import type { IncomingMessage } from "node:http";
import { parse } from "hono/utils/cookie";
import type { HandshakeError } from "../../shared/realtime.ts";
import type { SessionService } from "../auth/sessions.ts";
import type { TokenService } from "../auth/tokens.ts";
import { SESSION_COOKIE } from "../http/cookies.ts";
import type { IoSocket, SocketData } from "./types.ts";

/** A `connect_error` with a stable code in `data`, as socket.io-client exposes it. */
function refused(code: HandshakeError, message: string): Error {
  return Object.assign(new Error(message), { data: { code } });
}

/**
 * Cross-site WebSocket hijacking guard: a browser sends the page's Origin with the handshake; a foreign one
 * (not our host, not allow-listed) is refused when the handshake would be authenticated by our cookie.
 */
export function originAllowed(req: IncomingMessage, allowed: Set<string>): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host || allowed.has(origin);
  } catch {
    return false;
  }
}

/** Who a request (a Socket.IO handshake, a WebSocket upgrade) comes from, or the code it is refused with. */
export type Identity = { ok: true; data: SocketData } | { ok: false; code: HandshakeError; message: string };

/**
 * The caller is whoever `token` (an access token) or the session cookie says, and their session must be alive.
 * A cookie is only accepted from our own origin (or an allow-listed one).
 */
export async function identify(
  sessions: SessionService,
  tokens: TokenService,
  cookieName: string,
  allowed: Set<string>,
  req: IncomingMessage,
  token: unknown,
): Promise<Identity> {
  let found: Awaited<ReturnType<SessionService["validateId"]>> = null;
  if (typeof token === "string" && token.length > 0) {
    const claims = await tokens.verify(token);
    found = claims && (await sessions.validateId(claims.sessionId));
    if (!found || found.user.id !== claims?.userId)
      return { ok: false, code: "session_expired", message: "invalid or expired token" };
  } else {
    const cookie = parse(req.headers.cookie ?? "", cookieName)[cookieName];
    if (!cookie) return { ok: false, code: "unauthenticated", message: "authentication required" };
    if (!originAllowed(req, allowed)) return { ok: false, code: "csrf", message: "cross-site handshake refused" };
    found = await sessions.validateToken(cookie);
    if (!found) return { ok: false, code: "session_expired", message: "session expired" };
  }
  return {
    ok: true,
    data: {
      userId: found.user.id,
      displayName: found.user.displayName,
      role: found.user.role,
      sessionId: found.session.id,
    },
  };
}

/** Socket.IO middleware: `identify` with `auth.token` or the cookie; the result is kept in `socket.data`. */
export function authenticateSocket(
  sessions: SessionService,
  tokens: TokenService,
  production: boolean,
  allowed: Set<string>,
) {
  const cookieName = SESSION_COOKIE(production);
  return async (socket: IoSocket, next: (err?: Error) => void): Promise<void> => {
    try {
      const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
      const who = await identify(sessions, tokens, cookieName, allowed, socket.request, token);
      if (!who.ok) return next(refused(who.code, who.message));
      socket.data = who.data;
      next();
    } catch (err) {
      next(err instanceof Error ? err : new Error(String(err)));
    }
  };
}
