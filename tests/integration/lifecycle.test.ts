import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { waitFor } from "../helpers/factories.ts";
import { freePort, startRedis } from "../helpers/redis.ts";
import { startServer } from "../helpers/server.ts";

function runMain(env: Record<string, string>) {
  const child = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, exited, out: () => out, err: () => err };
}

/**
 * A raw WebSocket upgrade request: resolves with the first bytes of the answer, rejects on a connection error or
 * when nothing came back within `ms`.
 */
function rawUpgrade(port: number, path: string, ms = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to the upgrade within ${ms} ms`));
    }, ms);
    socket.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once("data", (d) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(d.toString());
    });
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  });
}

describe("lifecycle", () => {
  it("finishes an in-flight request before closing", async () => {
    const server = await startServer();
    const body = JSON.stringify({ email: "someone@example.com", password: "whatever it is" });
    const seen = new Promise((resolve) => server.server.once("request", resolve));
    const req = request(`${server.url}/api/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
    });
    const answered = new Promise<number>((resolve, reject) => {
      req.on("response", (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      });
      req.on("error", reject);
    });
    // Half the body now: the request is in flight when the server is told to close.
    req.write(body.slice(0, 10));
    await seen;
    const closing = server.close();
    req.end(body.slice(10));
    expect(await answered).toBe(401);
    await closing;
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
  });

  it("ends a WebSocket whose client never answers the closing handshake once the grace is over", async () => {
    const server = await startServer();
    // A raw upgrade to Engine.IO's WebSocket transport (accepted before any Socket.IO authentication), then
    // silence: the client reads nothing and never sends the close frame back.
    const socket = connect(server.port, "127.0.0.1");
    socket.on("error", () => {});
    const upgraded = new Promise<string>((resolve) => socket.once("data", (d) => resolve(d.toString())));
    socket.write(
      "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    expect(await upgraded).toMatch(/^HTTP\/1\.1 101/);
    socket.pause();
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    const started = Date.now();
    await server.close(300);
    // Without it, ws waits 30 s for the client's close frame before it lets go of the socket.
    expect(Date.now() - started).toBeLessThan(5000);
    socket.resume();
    await closed;
  });

  it("answers a notebook upgrade that comes in while the node closes, so that its client tries again", async () => {
    const server = await startServer();
    // The notebooks' endpoint is closed first, while the server still listens (Socket.IO closes next): a client
    // whose connection was just closed reconnects at once and lands there.
    await server.collab.close();
    const answer = await rawUpgrade(server.port, `/collab/${randomUUID()}`);
    expect(answer).toMatch(/^HTTP\/1\.1 503/);
    await server.close();
  });

  it("takes no connection before it can answer an upgrade", async () => {
    // With Redis, attaching Socket.IO waits for the adapter's connections: the moment to be careful about.
    const redis = await startRedis();
    const port = await freePort();
    // Upgrades to the port, one after the other, from before the server starts until one is answered: each is
    // refused (nobody listens yet) or answered, none is left waiting.
    const answers: string[] = [];
    let started = false;
    const knocking = (async () => {
      for (;;) {
        const answer = await rawUpgrade(port, `/collab/${randomUUID()}`).catch((err: Error) => err.message);
        answers.push(answer);
        if (answer.startsWith("HTTP/") && started) return;
      }
    })();
    const server = await startServer({ port, redisUrl: redis.url });
    started = true;
    await knocking;
    await server.close();
    await redis.stop();
    expect(answers.filter((a) => !a.startsWith("HTTP/") && !a.includes("ECONNREFUSED"))).toEqual([]);
    expect(answers.at(-1)).toMatch(/^HTTP\/1\.1 401/);
  });

  it("main.ts serves, then stops cleanly on SIGTERM", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "dp-main-"));
    try {
      const run = runMain({ PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir, LOG_LEVEL: "info" });
      const url = await waitFor(() => /"url":"([^"]+)"/.exec(run.out())?.[1], 30_000);
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
      expect(run.out()).toMatch(/generated missing secrets/);
      run.child.kill("SIGTERM");
      expect(await run.exited).toBe(0);
      expect(run.out()).toMatch(/stopped cleanly/);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("main.ts refuses a bad configuration, naming each variable", async () => {
    const run = runMain({ PORT: "not-a-port", DATABASE_URL: "mysql://x", NODE_ENV: "production" });
    expect(await run.exited).toBe(1);
    expect(run.err()).toMatch(/PORT/);
    expect(run.err()).toMatch(/DATABASE_URL/);
  });

  it("main.ts in production refuses to start without its secrets", async () => {
    const run = runMain({ NODE_ENV: "production", PORT: "0", DATA_DIR: "memory", LOG_LEVEL: "info" });
    expect(await run.exited).toBe(1);
    expect(run.out()).toMatch(/JWT_SECRET.*ENCRYPTION_KEYS.*BLIND_INDEX_KEY/);
  });
});
