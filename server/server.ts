import type { IncomingMessage, Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { createAdaptorServer } from "@hono/node-server";
import { ERROR_CODES, ERROR_TITLES } from "../shared/errors.ts";
import { SOCKET_PATH } from "../shared/realtime.ts";
import type { Config } from "./config.ts";
import { createDeps, type Deps } from "./deps.ts";
import { createApp } from "./http/app.ts";
import type { Logger } from "./log.ts";
import { attachCollab, type Collab } from "./notebooks/collab-server.ts";
import { attachRealtime, type Realtime } from "./realtime/io.ts";

export interface RunningServer {
  url: string;
  port: number;
  deps: Deps;
  server: Server;
  realtime: Realtime;
  /** the notebooks' WebSocket endpoint */
  collab: Collab;
  /**
   * Tells realtime clients to reconnect elsewhere and drops them, stops accepting, lets in-flight requests
   * finish (up to `graceMs`), then closes the database.
   */
  close(graceMs?: number): Promise<void>;
}

/** Builds everything from a config and listens. Used by `main.ts` and by the tests (with port 0). */
export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const deps = await createDeps(config, log);
  const app = createApp(deps);
  // Everything is attached before the server listens: an upgrade that came in between would find nobody to
  // answer it and hang (the upgrade tracker below makes Node keep such a socket open).
  const server = createAdaptorServer({ fetch: app.fetch, hostname: config.host }) as Server;
  // Requests Node refuses before our app sees them (a URL or headers over 16 KiB, broken HTTP) still get a
  // problem+json answer instead of a bare status line.
  server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || (socket as { _httpMessage?: unknown })._httpMessage) return socket.destroy();
    const tooLarge = err.code === "HPE_HEADER_OVERFLOW";
    const code = tooLarge ? "headers_too_large" : "invalid_input";
    const status = ERROR_CODES[code];
    const body = JSON.stringify({ type: `urn:doctorpy:problem:${code}`, title: ERROR_TITLES[code], status, code });
    socket.end(
      `HTTP/1.1 ${status} ${tooLarge ? "Request Header Fields Too Large" : "Bad Request"}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
  // Slow or idle clients must not hold a connection forever.
  server.requestTimeout = 30_000;
  server.headersTimeout = 15_000;
  // An upgraded connection (Socket.IO, notebooks) is no longer the HTTP server's to close, and a client that
  // never answers the WebSocket closing handshake would hold `close` for ws's 30 s: kept here, ended at the grace.
  const upgraded = new Set<Duplex>();
  server.on("upgrade", (_req: IncomingMessage, socket: Duplex) => {
    upgraded.add(socket);
    socket.once("close", () => upgraded.delete(socket));
  });
  const realtime = await attachRealtime(server, deps);
  const collab = attachCollab(server, deps, SOCKET_PATH);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(config.port, config.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    await collab.close();
    await realtime.close();
    await deps.close();
    throw err;
  }
  const { port } = server.address() as AddressInfo;
  const host = config.host === "0.0.0.0" || config.host === "::" ? "localhost" : config.host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    port,
    deps,
    server,
    realtime,
    collab,
    close(graceMs = 10_000) {
      closing ??= (async () => {
        await collab.close();
        await realtime.close();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const timer = setTimeout(() => {
          server.closeAllConnections();
          for (const socket of upgraded) socket.destroy();
        }, graceMs);
        await closed;
        clearTimeout(timer);
        await deps.close();
      })();
      return closing;
    },
  };
}
