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

/**
 * Socket.IO middleware: the caller is whoever `auth.token` (an access token) or the session cookie says, and
 * their session must be alive. The result is kept in `socket.data`.
 */
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
      let found: Awaited<ReturnType<SessionService["validateId"]>> = null;
      if (typeof token === "string" && token.length > 0) {
        const claims = await tokens.verify(token);
        found = claims && (await sessions.validateId(claims.sessionId));
        if (!found || found.user.id !== claims?.userId)
          return next(refused("session_expired", "invalid or expired token"));
      } else {
        const cookie = parse(socket.request.headers.cookie ?? "", cookieName)[cookieName];
        if (!cookie) return next(refused("unauthenticated", "authentication required"));
        if (!originAllowed(socket.request, allowed)) return next(refused("csrf", "cross-site handshake refused"));
        found = await sessions.validateToken(cookie);
        if (!found) return next(refused("session_expired", "session expired"));
      }
      const data: SocketData = {
        userId: found.user.id,
        displayName: found.user.displayName,
        role: found.user.role,
        sessionId: found.session.id,
      };
      socket.data = data;
      next();
    } catch (err) {
      next(err instanceof Error ? err : new Error(String(err)));
    }
  };
}
