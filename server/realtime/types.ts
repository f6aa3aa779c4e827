import type { Server, Socket } from "socket.io";
import type { Role } from "../../shared/permissions.ts";
import type { ClientToServerEvents, ServerToClientEvents } from "../../shared/realtime.ts";

/** What the handshake learnt about the caller. */
export interface SocketData {
  userId: string;
  displayName: string;
  role: Role;
  sessionId: string;
}

export type IoServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
export type IoSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

/** The Socket.IO room of a study room, and of all of one user's sockets (to reach them on every node). */
export const roomChannel = (roomId: string) => `room:${roomId}`;
export const userChannel = (userId: string) => `user:${userId}`;
