import { createHash, randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import type { Logger } from "../log.ts";

/** `u`: a Yjs update (already in the database); `a`: an awareness update (never stored). */
export type RelayKind = "u" | "a";

export interface RelayMessage {
  notebookId: string;
  /** the node that published it */
  node: string;
  kind: RelayKind;
  data: Uint8Array;
}

/** Carries a notebook's updates between the nodes that have it open. */
export interface NotebookRelay {
  /**
   * Reads the notebook's stream from a minute back (what was relayed but maybe not stored yet) on; resolves once
   * positioned, before the caller reads the database.
   */
  watch(notebookId: string): Promise<void>;
  unwatch(notebookId: string): void;
  publish(notebookId: string, kind: RelayKind, data: Uint8Array): void;
  onMessage(handler: (message: RelayMessage) => void): void;
  /** Called when messages may have been missed (Redis was unreachable): the documents are reloaded. */
  onGap(handler: () => void): void;
  close(): Promise<void>;
}

/** One node: nothing to carry. */
export function localRelay(): NotebookRelay {
  return {
    watch: async () => {},
    unwatch: () => {},
    publish: () => {},
    onMessage: () => {},
    onGap: () => {},
    close: async () => {},
  };
}

const streamKey = (notebookId: string) => `dp:nb:${notebookId}`;
/** Entries kept per stream: a node that fell further behind than this reloads from the database anyway. */
const STREAM_MAXLEN = "10000";
/**
 * A node that opens a notebook reads the stream from this long before its newest entry: updates are relayed
 * as soon as they are accepted, and stored a moment later, so the database it reads next may not hold them yet.
 */
const REPLAY_MS = 60_000;
/** A stream nobody wrote to for this long is dropped by Redis (the database holds the document). */
const STREAM_TTL_MS = 3_600_000;
/** The TTL is renewed by the first publish once it has run down by this much, not by every publish. */
const TTL_RENEW_MS = 60_000;
/**
 * XADD, and PEXPIRE only when the stream has no TTL (just created, also by a restarted Redis) or its TTL ran down
 * by TTL_RENEW_MS: one round trip per update, and Redis, not this process, knows whether the TTL is there.
 */
const XADD_SCRIPT = `local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'n', ARGV[2], 'k', ARGV[3], 'd', ARGV[4])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[6]) then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
return id`;
const XADD_SHA = createHash("sha1").update(XADD_SCRIPT).digest("hex");
const BLOCK_MS = 1000;
const RETRY_MS = 250;
const PENDING_MAX = 10_000;
/** A command Redis has not answered within this long is treated as failed (and retried). */
const COMMAND_TIMEOUT_MS = 3000;

class TimeoutError extends Error {}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError("redis command timed out")), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Redis Streams, one per open notebook (`dp:nb:<id>`): ordered and replayable, so a node reads from where it
 * was after a slow moment. Every node has one blocking reader over the streams of the notebooks it has open.
 * An update that could not be published (Redis down) is retried in order until Redis takes it; a reader that
 * lost its connection reports a gap when it is back, and the hub reloads its documents from the database, where
 * every accepted update already is. Updates are idempotent in Yjs, so replays cost nothing but time.
 * `node` is this process's id, the one its heartbeat uses (so that a dead node's awareness can be dropped).
 */
export function redisRelay(redis: Redis, log: Logger, node: string = randomUUID()): NotebookRelay {
  const reader = redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, lazyConnect: true });
  reader.on("error", (err: Error) => log.debug({ err: err.message }, "notebook relay reader error"));
  const positions = new Map<string, string>();
  const handlers: ((m: RelayMessage) => void)[] = [];
  const gapHandlers: (() => void)[] = [];
  const pending: { key: string; kind: RelayKind; data: Uint8Array }[] = [];
  let retryTimer: NodeJS.Timeout | undefined;
  let readerId: number | undefined;
  let closed = false;
  let blocked = false;
  let wake: (() => void) | undefined;

  const xadd = async (key: string, kind: RelayKind, data: Uint8Array) => {
    const args = [key, STREAM_MAXLEN, node, kind, Buffer.from(data), STREAM_TTL_MS, STREAM_TTL_MS - TTL_RENEW_MS];
    await withTimeout(
      redis.evalsha(XADD_SHA, 1, ...args).catch((err: Error) => {
        // Not in this Redis's script cache yet (first use, or Redis restarted): sent whole, cached from then on.
        if (!err.message.startsWith("NOSCRIPT")) throw err;
        return redis.eval(XADD_SCRIPT, 1, ...args);
      }),
      COMMAND_TIMEOUT_MS,
    );
  };

  // One flusher at a time: two would both send the head of the queue and then both drop an entry.
  let flushing = false;
  const flushPending = async () => {
    retryTimer = undefined;
    if (flushing) return;
    flushing = true;
    try {
      while (pending.length > 0 && !closed) {
        const next = pending[0] as (typeof pending)[number];
        try {
          await xadd(next.key, next.kind, next.data);
          pending.shift();
        } catch {
          retryTimer ??= setTimeout(() => void flushPending(), RETRY_MS);
          return;
        }
      }
    } finally {
      flushing = false;
    }
  };

  const interrupt = () => {
    if (wake) wake();
    else if (blocked && readerId !== undefined)
      // The reader waits in XREAD over the old set of streams: unblock it so that it reads the new one too.
      void redis.client("UNBLOCK", readerId).catch(() => {});
  };

  const loop = async () => {
    let lost = false;
    while (!closed) {
      if (positions.size === 0) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
        continue;
      }
      const keys = [...positions.keys()];
      try {
        blocked = true;
        // A read that outlives its BLOCK by far is stuck on a connection that died under it: start afresh.
        const reply = await withTimeout(
          reader.xreadBuffer(
            "COUNT",
            500,
            "BLOCK",
            BLOCK_MS,
            "STREAMS",
            ...keys.map(streamKey),
            ...keys.map((k) => positions.get(k) as string),
          ),
          BLOCK_MS + COMMAND_TIMEOUT_MS,
        ).catch((err: unknown) => {
          if (err instanceof TimeoutError) reader.disconnect(true);
          throw err;
        });
        blocked = false;
        if (lost) {
          lost = false;
          for (const h of gapHandlers) h();
        }
        for (const [key, entries] of reply ?? []) {
          const notebookId = key.toString().slice("dp:nb:".length);
          for (const [id, fields] of entries) {
            if (positions.has(notebookId)) positions.set(notebookId, id.toString());
            const f = new Map<string, Buffer>();
            for (let i = 0; i + 1 < fields.length; i += 2) f.set(String(fields[i]), fields[i + 1] as Buffer);
            if (f.get("n")?.toString() === node) continue;
            const kind = f.get("k")?.toString();
            const data = f.get("d");
            if ((kind !== "u" && kind !== "a") || !data || !positions.has(notebookId)) continue;
            const message = {
              notebookId,
              node: f.get("n")?.toString() ?? "",
              kind,
              data: new Uint8Array(data),
            } as RelayMessage;
            for (const h of handlers) h(message);
          }
        }
      } catch (err) {
        blocked = false;
        if (closed) break;
        lost = true;
        log.debug({ err: (err as Error).message }, "notebook relay read failed");
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  };

  /** Ends the wait for the reader's first connection when the relay closes first. */
  let stopWaiting: (() => void) | undefined;
  const ready = (async () => {
    // A node may start while Redis is unreachable: ioredis keeps trying after a failed first attempt, and the
    // relay is ready at its first "ready", however late.
    await new Promise<void>((resolve, reject) => {
      stopWaiting = () => reject(new Error("notebook relay closed"));
      reader.once("ready", () => resolve());
      reader.connect().catch((err: Error) => log.debug({ err: err.message }, "notebook relay: Redis unreachable"));
    });
    stopWaiting = undefined;
    // Every later "ready" is a reconnect: the client id changed, and whatever was written while the reader was
    // away (a stream lost with a restarted Redis, a node that died before it could publish) is in the database.
    reader.on("ready", () => {
      for (const h of gapHandlers) h();
      void reader
        .client("ID")
        .then((id) => {
          readerId = Number(id);
        })
        .catch(() => {});
    });
    readerId = Number(await reader.client("ID"));
    void loop();
  })();
  // Callers of `watch` see a failure; meanwhile it is not an unhandled rejection.
  ready.catch(() => {});

  return {
    async watch(notebookId) {
      await ready;
      if (positions.has(notebookId)) return;
      let last = "0-0";
      try {
        const [newest] = await redis.xrevrange(streamKey(notebookId), "+", "-", "COUNT", 1);
        const ms = newest ? Number(newest[0].split("-")[0]) : 0;
        if (ms > REPLAY_MS) last = `${ms - REPLAY_MS}-0`;
      } catch {
        // Redis is down: read the whole (short) stream when it is back; the database has the rest.
      }
      positions.set(notebookId, last);
      interrupt();
    },
    unwatch(notebookId) {
      positions.delete(notebookId);
    },
    publish(notebookId, kind, data) {
      const key = streamKey(notebookId);
      if (pending.length > 0) {
        if (kind === "u" && pending.length < PENDING_MAX) pending.push({ key, kind, data });
        return;
      }
      xadd(key, kind, data).catch(() => {
        // Awareness is ephemeral (clients renew it); updates wait for Redis, in order.
        if (kind !== "u") return;
        pending.push({ key, kind, data });
        retryTimer ??= setTimeout(() => void flushPending(), RETRY_MS);
      });
    },
    onMessage: (handler) => void handlers.push(handler),
    onGap: (handler) => void gapHandlers.push(handler),
    async close() {
      // Updates that still wait for Redis get one last chance (the others reload from the database anyway).
      clearTimeout(retryTimer);
      const deadline = Date.now() + 1000;
      while (pending.length > 0 && Date.now() < deadline) {
        await flushPending();
        if (pending.length > 0) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      clearTimeout(retryTimer);
      closed = true;
      wake?.();
      stopWaiting?.();
      // Disconnecting rejects what the reader still waits for (its first connection, a blocked read).
      reader.disconnect();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([ready.catch(() => {}), new Promise((resolve) => (timer = setTimeout(resolve, 1000)))]);
      clearTimeout(timer);
    },
  };
}
