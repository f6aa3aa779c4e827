import type { Server as HttpServer, IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import { CLOSE, COLLAB_PATH, NOTEBOOK_LIMITS } from "../../shared/notebook/protocol.ts";
import type { Invalidation } from "../auth/session-cache.ts";
import type { Deps } from "../deps.ts";
import { SESSION_COOKIE } from "../http/cookies.ts";
import { identify } from "../realtime/handshake.ts";
import { type Access, CollabConnection } from "./connection.ts";
import { notebookAccess } from "./notebook-service.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PING_MS = 30_000;

export interface Collab {
  /** open connections on this node */
  readonly connections: ReadonlySet<CollabConnection>;
  close(): Promise<void>;
}

/**
 * The notebooks' WebSocket endpoint, `/collab/<notebookId>`, on the API's HTTP server. The upgrade is
 * authenticated (session cookie from our origin, or `?token=` with an access token) and authorised by the
 * caller's role in the notebook's room before the WebSocket exists; a refusal is a plain HTTP answer (401, 403,
 * 404). Changes to a room, its members or a session re-evaluate the open connections on every node.
 */
export function attachCollab(server: HttpServer, deps: Deps, socketPath: string): Collab {
  const { config, log, notebooks } = deps;
  const wss = new WebSocketServer({ noServer: true, maxPayload: NOTEBOOK_LIMITS.messageBytes + 64 });
  const connections = new Set<CollabConnection>();
  const allowed = new Set(config.corsOrigins);
  const cookieName = SESSION_COOKIE(config.env === "production");
  let closing = false;

  const refuse = (socket: Duplex, status: number, text: string) => {
    if (socket.writable) socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    socket.destroy();
  };

  const upgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const id = url.pathname.slice(COLLAB_PATH.length);
    if (closing) return refuse(socket, 503, "Service Unavailable");
    if (!UUID.test(id)) return refuse(socket, 404, "Not Found");
    const who = await identify(deps.sessions, deps.tokens, cookieName, allowed, req, url.searchParams.get("token"));
    if (!who.ok) return refuse(socket, who.code === "csrf" ? 403 : 401, "Unauthorized");
    const row = await notebooks.store.get(id);
    const access = row && (await notebookAccess(deps, row, who.data.userId));
    if (!row || !access) return refuse(socket, 404, "Not Found");
    const live = await notebooks.hub.open(row);
    if (closing) return refuse(socket, 503, "Service Unavailable");
    wss.handleUpgrade(req, socket, head, (ws) => {
      const conn = new CollabConnection(ws, notebooks.hub, live, who.data, access);
      connections.add(conn);
      let alive = true;
      ws.on("pong", () => {
        alive = true;
      });
      const ping = setInterval(() => {
        if (!alive) return ws.terminate();
        alive = false;
        ws.ping();
      }, PING_MS);
      ws.on("close", () => {
        clearInterval(ping);
        connections.delete(conn);
      });
    });
  };

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? "").split("?")[0] ?? "";
    if (!path.startsWith(COLLAB_PATH)) {
      // Socket.IO answers its own path; nobody else upgrades.
      if (!path.startsWith(socketPath)) refuse(socket, 404, "Not Found");
      return;
    }
    socket.on("error", () => socket.destroy());
    upgrade(req, socket, head).catch((err: unknown) => {
      log.warn({ err: (err as Error).message }, "notebook upgrade failed");
      refuse(socket, 500, "Internal Server Error");
    });
  };
  server.on("upgrade", onUpgrade);

  /** Re-evaluates the connections an invalidation may concern. */
  const recheck = async (event: Invalidation) => {
    const concerned = [...connections].filter((c) => {
      if (event.kind === "all") return true;
      if (event.kind === "room") return c.live.row.roomId === event.id;
      if (event.kind === "user") return c.user.userId === event.id;
      return c.user.sessionId === event.id;
    });
    const rows = new Map<string, Awaited<ReturnType<typeof notebooks.store.get>>>();
    for (const conn of concerned) {
      if (event.kind !== "room" && (await deps.sessions.validateId(conn.user.sessionId)) === null) {
        conn.close(CLOSE.sessionEnded, "session ended");
        continue;
      }
      if (event.kind !== "room" && event.kind !== "all") continue;
      const id = conn.live.id;
      if (!rows.has(id)) rows.set(id, await notebooks.store.get(id));
      const row = rows.get(id);
      if (row) conn.live.row = row;
      const access: Access | null = row ? await notebookAccess(deps, row, conn.user.userId) : null;
      if (!access) conn.close(CLOSE.accessRevoked, "access revoked");
      else conn.setAccess(access);
    }
  };
  deps.invalidations.subscribe((event) => {
    if (connections.size === 0) return;
    recheck(event).catch((err: unknown) =>
      log.warn({ err: (err as Error).message }, "notebook access re-check failed"),
    );
  });

  return {
    connections,
    async close() {
      // The upgrade listener stays: until the server stops listening, a client that reconnects at once is told
      // 503 and tries again (elsewhere), where without a listener its upgrade would hang unanswered.
      closing = true;
      for (const conn of connections) conn.close(CLOSE.goingAway, "server shutting down");
    },
  };
}
