/**
 * The realtime load generator of bench/rooms.ts: sockets over WebSocket (socket.io-client, or the lighter
 * LightSocket where the client side would otherwise be the limit), ramped up in batches, joined to rooms, and
 * a latency recorder. The bare Socket.IO baseline and DoctorPy speak the same event names (`room:join`,
 * `chat:send` → `chat:message`), so everything here drives both.
 */
import { readFileSync } from "node:fs";
import { io, type Socket } from "socket.io-client";
import { SOCKET_PATH } from "../../shared/realtime.ts";
import type { LightSocket } from "./light-socket.ts";

export type BenchSocket = Socket;

/** One socket.io-client connection over WebSocket only, without reconnection; rejects with the connect_error. */
export function connectSocket(url: string, token: string | undefined, timeoutMs = 30_000): Promise<BenchSocket> {
  const socket = io(url, {
    path: SOCKET_PATH,
    transports: ["websocket"],
    auth: token ? { token } : {},
    reconnection: false,
    forceNew: true,
    timeout: timeoutMs,
  });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err: Error & { data?: { code?: string } }) => {
      socket.close();
      reject(Object.assign(new Error(`connect_error: ${err.message} (${err.data?.code ?? "no code"})`), err));
    });
  });
}

/**
 * Opens `n` sockets with `open`, `batch` handshakes at a time; socket `i` goes to `urls[i % urls.length]` with
 * `tokenOf(i)`. Any failure closes what was opened and rejects.
 */
export async function connectMany<S extends { close(): void }>(
  open: (url: string, token: string | undefined) => Promise<S>,
  urls: string[],
  n: number,
  tokenOf: (i: number) => string | undefined,
  batch: number,
  progress?: (done: number) => void,
): Promise<S[]> {
  const sockets: S[] = [];
  try {
    for (let from = 0; from < n; from += batch) {
      const opened = await Promise.all(
        Array.from({ length: Math.min(batch, n - from) }, (_, k) =>
          open(urls[(from + k) % urls.length] as string, tokenOf(from + k)),
        ),
      );
      sockets.push(...opened);
      progress?.(sockets.length);
    }
  } catch (err) {
    closeAll(sockets);
    throw err;
  }
  return sockets;
}

/** `room:join` for every socket (`roomOf(i)`), `concurrency` at a time; any refusal rejects. Returns the time taken. */
export async function joinAll(
  sockets: LightSocket[],
  roomOf: (i: number) => string,
  concurrency: number,
): Promise<number> {
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < sockets.length) {
      const i = next++;
      const reply = await (sockets[i] as LightSocket).request("room:join", { roomId: roomOf(i) });
      if (!reply.ok) throw new Error(`room:join refused for socket ${i}: ${JSON.stringify(reply.error)}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, sockets.length) }, worker));
  return performance.now() - started;
}

/** Drops the listeners and closes every socket (without reconnection, nothing comes back). */
export function closeAll(sockets: { close(): void; off?(): void }[]): void {
  for (const s of sockets) {
    s.off?.();
    s.close();
  }
}

/** Latency samples in ms (floats); percentiles by sorting once. */
export class Samples {
  private buf = new Float64Array(1 << 16);
  private n = 0;
  private sorted = true;

  add(v: number): void {
    if (this.n === this.buf.length) {
      const bigger = new Float64Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    this.buf[this.n++] = v;
    this.sorted = false;
  }

  get count(): number {
    return this.n;
  }

  /** the `p`-th percentile (0–100), nearest rank; NaN without samples */
  percentile(p: number): number {
    if (this.n === 0) return Number.NaN;
    if (!this.sorted) {
      this.buf.subarray(0, this.n).sort();
      this.sorted = true;
    }
    const rank = Math.min(this.n - 1, Math.max(0, Math.ceil((p / 100) * this.n) - 1));
    return this.buf[rank] as number;
  }

  max(): number {
    return this.percentile(100);
  }
}

/**
 * Message bodies carry the sender's index and the send time on this process's clock (`performance.now()`), so
 * that every receiver computes the end-to-end latency against the same clock. `LightSocket.onChatStamp` reads
 * them back from the bytes.
 */
export const stampBody = (sender: number, t: number) => `${sender}|${t.toFixed(3)}`;

/**
 * The machine's CPU ticks so far, all and stolen (Linux `/proc/stat`: time a virtual machine was ready to run
 * while the hypervisor ran someone else). Null elsewhere.
 */
export function machineTicks(): { total: number; steal: number } | null {
  try {
    const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
    return { total: cpu.reduce((a, b) => a + b, 0), steal: cpu[7] ?? 0 };
  } catch {
    return null;
  }
}

/** This process's CPU time so far, in microseconds. */
export function selfCpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
