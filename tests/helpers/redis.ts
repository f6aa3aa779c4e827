import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { Redis } from "ioredis";
import { waitFor } from "./factories.ts";

/** A free TCP port on loopback (asked of the OS, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface TestRedis {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
  /** stops the server and starts an empty one on the same port (what a crash and a restart look like) */
  restart(): Promise<void>;
  /** starts an empty server on the same port again, after `stop()` */
  start(): Promise<void>;
}

function spawnRedis(port: number): ChildProcess {
  return spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
}

async function ready(url: string): Promise<void> {
  await waitFor(async () => {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on("error", () => {});
    try {
      await probe.connect();
      return (await probe.ping()) === "PONG";
    } finally {
      probe.disconnect();
    }
  }, 10_000);
}

const stopProcess = (proc: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once("exit", () => resolve());
    proc.kill("SIGTERM");
  });

/** A private `redis-server` on a free port that keeps nothing on disk, so that runs never share state. */
export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const handle: TestRedis = {
    url,
    port,
    process: spawnRedis(port),
    stop: () => stopProcess(handle.process),
    async restart() {
      await stopProcess(handle.process);
      await handle.start();
    },
    async start() {
      handle.process = spawnRedis(port);
      await ready(url);
    },
  };
  await ready(url);
  return handle;
}

/**
 * Closes a subscribed connection just after ioredis sent its next (re)subscription, before Redis can answer: as
 * `disconnect()` does (no reconnect), and with the socket destroyed at once, so that no reply comes in between.
 */
export function closeWhileResubscribing(sub: Redis): void {
  const subscribe = sub.subscribe.bind(sub) as (...args: unknown[]) => Promise<unknown>;
  sub.subscribe = ((...args: unknown[]) => {
    const reply = subscribe(...args);
    sub.disconnect();
    (sub as unknown as { stream?: { destroy(): void } }).stream?.destroy();
    return reply;
  }) as Redis["subscribe"];
}

/** Records the unhandled rejections of the process while `run` runs (and a moment after). */
export async function unhandledDuring(run: () => Promise<void>): Promise<unknown[]> {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on("unhandledRejection", onUnhandled);
  try {
    await run();
    await new Promise((resolve) => setTimeout(resolve, 100));
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
  return unhandled;
}
