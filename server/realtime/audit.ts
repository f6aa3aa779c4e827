import type { AuditContext } from "../audit/audit-log.ts";
import type { IoSocket } from "./types.ts";

/** The audit "who and from where" of a socket's action. */
export function socketAudit(socket: IoSocket): AuditContext {
  const ua = socket.handshake.headers["user-agent"];
  return {
    actorId: socket.data.userId,
    ip: socket.handshake.address || null,
    userAgent: typeof ua === "string" ? ua.slice(0, 512) : null,
    requestId: `socket:${socket.id}`,
  };
}
