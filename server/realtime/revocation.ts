import type { Invalidation } from "../auth/session-cache.ts";
import type { Deps } from "../deps.ts";
import { type IoServer, type IoSocket, userChannel } from "./types.ts";

/**
 * Ends the connections whose session is no longer valid. Every invalidation of the session cache (logout,
 * revocation, password change, disable, role change) reaches every node; each node re-checks the sockets it
 * holds for that session or user and disconnects those whose session is gone, telling them why first.
 */
export function disconnectRevoked(io: IoServer, deps: Deps): void {
  const check = async (sockets: IoSocket[]) => {
    const alive = new Map<string, boolean>();
    for (const socket of sockets) {
      const id = socket.data.sessionId;
      if (!alive.has(id)) alive.set(id, (await deps.sessions.validateId(id)) !== null);
      if (!alive.get(id)) {
        socket.emit("auth:revoked", { code: "session_expired" });
        socket.disconnect(true);
      }
    }
  };
  const local = (event: Invalidation): IoSocket[] => {
    if (event.kind === "user") {
      const ids = io.of("/").adapter.rooms.get(userChannel(event.id)) ?? new Set<string>();
      return [...ids].map((id) => io.of("/").sockets.get(id)).filter((s): s is IoSocket => s !== undefined);
    }
    return [...io.of("/").sockets.values()].filter((s) => s.data.sessionId === event.id);
  };
  deps.invalidations.subscribe((event) => {
    const sockets = local(event);
    if (sockets.length === 0) return;
    check(sockets).catch((err: unknown) => deps.log.warn({ err }, "could not re-check revoked sockets"));
  });
}
