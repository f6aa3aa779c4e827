import type { AuditContext } from "../audit/audit-log.ts";
import type { Deps } from "../deps.ts";
import { AppError } from "../errors.ts";
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

/** Runs a moderation action and audits it: `success`, or `denied` with the refusal's code. */
export async function audited<T>(
  socket: IoSocket,
  deps: Pick<Deps, "audit">,
  action: string,
  target: { targetType: string; targetId: string },
  details: Record<string, unknown>,
  run: () => Promise<T>,
): Promise<T> {
  try {
    const result = await run();
    await deps.audit.append(socketAudit(socket), { action, outcome: "success", ...target, details });
    return result;
  } catch (err) {
    if (err instanceof AppError) {
      await deps.audit.append(socketAudit(socket), {
        action,
        outcome: "denied",
        ...target,
        details: { ...details, reason: err.code },
      });
    }
    throw err;
  }
}
