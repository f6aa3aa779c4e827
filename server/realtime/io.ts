import type { Server as HttpServer } from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import { Server } from "socket.io";
import { SOCKET_MAX_PAYLOAD, SOCKET_PATH } from "../../shared/realtime.ts";
import type { Deps } from "../deps.ts";
import { chatHandlers } from "./chat-handlers.ts";
import { authenticateSocket, originAllowed } from "./handshake.ts";
import { moderationHandlers } from "./moderation-handlers.ts";
import { watchNodes } from "./node-watch.ts";
import { disconnectRevoked } from "./revocation.ts";
import { applyRoomEvents } from "./room-events.ts";
import { roomHandlers, signalHandlers } from "./room-handlers.ts";
import { type IoServer, userChannel } from "./types.ts";

export interface Realtime {
  io: IoServer;
  /** tells this node's clients to reconnect elsewhere, closes their connections and the adapter */
  close(): Promise<void>;
}

/**
 * Socket.IO on the API's HTTP server. With Redis, nodes share rooms through @socket.io/redis-adapter (its own
 * two connections); without it, one node in memory.
 */
export async function attachRealtime(server: HttpServer, deps: Deps): Promise<Realtime> {
  const { config, log } = deps;
  const allowed = new Set(config.corsOrigins);
  const io: IoServer = new Server(server, {
    path: SOCKET_PATH,
    serveClient: false,
    maxHttpBufferSize: SOCKET_MAX_PAYLOAD,
    cors: { origin: [...allowed], credentials: true },
    // Refuse cross-site handshakes before any work (the auth middleware checks again with the cookie in hand).
    allowRequest: (req, callback) => callback(null, originAllowed(req, allowed)),
  });

  let pub: typeof deps.redis;
  let sub: typeof deps.redis;
  if (deps.redis) {
    // The adapter needs its own connections, with an offline queue (they resubscribe after an outage).
    pub = deps.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, lazyConnect: true });
    sub = pub.duplicate();
    for (const c of [pub, sub])
      c.on("error", (err: Error) => log.warn({ err: err.message }, "socket.io adapter redis error"));
    await Promise.all([pub.connect(), sub.connect()]);
    io.adapter(createAdapter(pub, sub, { requestsTimeout: 3000 }));
  }

  disconnectRevoked(io, deps);
  io.use(authenticateSocket(deps.sessions, deps.tokens, config.env === "production", allowed));
  io.on("connection", (socket) => {
    void socket.join(userChannel(socket.data.userId));
    roomHandlers(io, socket, deps);
    chatHandlers(io, socket, deps);
    signalHandlers(io, socket, deps);
    moderationHandlers(socket, deps);
  });

  const stopWatching = watchNodes(io, deps);
  const stopApplying = applyRoomEvents(io, deps);

  return {
    io,
    async close() {
      stopWatching();
      stopApplying();
      io.local.emit("server:shutdown", { reconnect: true });
      // Closing the engine drops each transport without a "server disconnect": clients reconnect on their own.
      io.engine.close();
      pub?.disconnect();
      sub?.disconnect();
    },
  };
}
