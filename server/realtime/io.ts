import type { Server as HttpServer } from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import type { Redis } from "ioredis";
import { Server } from "socket.io";
import { SOCKET_MAX_PAYLOAD, SOCKET_PATH } from "../../shared/realtime.ts";
import type { Deps } from "../deps.ts";
import { closeRedis, quietReplies } from "../redis-close.ts";
import { chatHandlers } from "./chat-handlers.ts";
import { coalesceEngineWrites, flushPendingWrites, setWriteHold, writeBroadcastFramesDirectly } from "./coalesce.ts";
import { authenticateSocket, originAllowed } from "./handshake.ts";
import { moderationHandlers } from "./moderation-handlers.ts";
import { watchNodes } from "./node-watch.ts";
import { disconnectRevoked } from "./revocation.ts";
import { applyRoomEvents } from "./room-events.ts";
import { roomHandlers, settleLeaving, signalHandlers } from "./room-handlers.ts";
import { applyTutorEvents, tutorHandlers } from "./tutor-handlers.ts";
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
    // The notebooks' endpoint (/collab/) upgrades on the same server, after an asynchronous authentication.
    destroyUpgrade: false,
    maxHttpBufferSize: SOCKET_MAX_PAYLOAD,
    cors: { origin: [...allowed], credentials: true },
    // Refuse cross-site handshakes before any work (the auth middleware checks again with the cookie in hand).
    allowRequest: (req, callback) => callback(null, originAllowed(req, allowed)),
  });

  // A burst to one client (a batch of chat messages, relayed events) leaves in one system call.
  setWriteHold(config.wsWriteHoldMs);
  coalesceEngineWrites(io.engine);
  writeBroadcastFramesDirectly(io);

  let pub: typeof deps.redis;
  let sub: typeof deps.redis;
  if (deps.redis) {
    ({ pub, sub } = await adapterConnections(deps.redis, log));
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
    tutorHandlers(socket, deps);
  });

  const stopWatching = watchNodes(io, deps);
  const stopApplying = applyRoomEvents(io, deps);
  const stopTutor = applyTutorEvents(io, deps);

  return {
    io,
    async close() {
      stopWatching();
      // This node's answers end as interrupted (their text kept) while their rooms can still be told.
      await deps.tutor.stop();
      stopApplying();
      stopTutor();
      io.local.emit("server:shutdown", { reconnect: true });
      // Closing the engine discards what waits to be written: the notice leaves first.
      flushPendingWrites();
      // Closing the engine drops each transport without a "server disconnect": clients reconnect on their own.
      io.engine.close();
      // The others learn that this node's users left before its Redis connections close.
      await settleLeaving(io);
      await Promise.all([closeRedis(pub), closeRedis(sub)]);
    },
  };
}

/**
 * The adapter's own two connections, with an offline queue (they resubscribe after an outage). Neither its
 * publishes nor ioredis's resubscriptions wait for their replies: a refusal by a closing connection is logged.
 */
export async function adapterConnections(redis: Redis, log: Deps["log"]): Promise<{ pub: Redis; sub: Redis }> {
  const pub = redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, lazyConnect: true });
  const sub = pub.duplicate();
  for (const c of [pub, sub])
    c.on("error", (err: Error) => log.warn({ err: err.message }, "socket.io adapter redis error"));
  await Promise.all([pub.connect(), sub.connect()]);
  const refused = (command: string, err: Error) =>
    log.debug({ err: err.message, command }, "socket.io adapter redis command refused");
  quietReplies(pub, ["publish"], refused);
  quietReplies(sub, ["subscribe", "psubscribe"], refused);
  return { pub, sub };
}
