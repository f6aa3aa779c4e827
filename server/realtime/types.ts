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

/** Events between nodes (through the adapter). */
export interface InterServerEvents {
  /** stop this generation if you run it */
  "tutor:cancel": (answerId: string) => void;
}

export type IoServer = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
export type IoSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

/** The Socket.IO room of a study room, and of all of one user's sockets (to reach them on every node). */
export const roomChannel = (roomId: string) => `room:${roomId}`;
export const userChannel = (userId: string) => `user:${userId}`;
