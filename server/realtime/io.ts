import type { Server as HttpServer } from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import type { Redis } from "ioredis";
import { Server } from "socket.io";
import { SOCKET_MAX_PAYLOAD, SOCKET_PATH } from "../../shared/realtime.ts";
import type { Deps } from "../deps.ts";
import { closeRedis } from "../redis-close.ts";
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
    // The adapter needs its own connections, with an offline queue (they resubscribe after an outage).
    pub = deps.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, lazyConnect: true });
    sub = pub.duplicate();
    for (const c of [pub, sub])
      c.on("error", (err: Error) => log.warn({ err: err.message }, "socket.io adapter redis error"));
    await Promise.all([pub.connect(), sub.connect()]);
    quietPublish(pub, log);
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
 * The adapter publishes without waiting for the reply, so a publish that a closing connection refuses (a response
 * to another node's request that arrives while this node shuts down) would be an unhandled rejection, which
 * ends the process. Such a refusal is logged instead; callers that wait for the reply still see it.
 */
export function quietPublish(pub: Redis, log: Deps["log"]): void {
  const publish = pub.publish.bind(pub) as (...args: unknown[]) => Promise<number>;
  pub.publish = ((...args: unknown[]) => {
    const reply = publish(...args);
    reply.catch((err: Error) => log.debug({ err: err.message }, "socket.io adapter publish refused"));
    return reply;
  }) as Redis["publish"];
}
