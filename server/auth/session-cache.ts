import { EventEmitter } from "node:events";
import type { Redis } from "ioredis";
import { quietReplies } from "../redis-close.ts";
import type { SessionRow, UserRow } from "./sessions.ts";

/**
 * What went stale: one session, everything cached about one user (role change, disable, password), one
 * room's memberships and settings (the rooms domain's standing cache), or anything at all: `all` is never
 * published, a bus delivers it to its own subscribers when it may have missed messages (Redis reconnected).
 */
export type Invalidation =
  | { kind: "session"; id: string }
  | { kind: "user"; id: string }
  | { kind: "room"; id: string }
  | { kind: "all"; id: "" };

/** Carries invalidations to every node: in-process on a single node, Redis pub/sub in a cluster. */
export interface InvalidationBus {
  publish(event: Invalidation): void;
  subscribe(handler: (event: Invalidation) => void): void;
  close(): Promise<void>;
}

export function localBus(): InvalidationBus {
  const emitter = new EventEmitter();
  return {
    publish: (event) => emitter.emit("invalidate", event),
    subscribe: (handler) => void emitter.on("invalidate", handler),
    close: async () => void emitter.removeAllListeners(),
  };
}

const CHANNEL = "dp:auth:invalidate";

/** Redis pub/sub on a connection of its own (a subscribed connection can do nothing else). */
export async function redisBus(redis: Redis, onError: (err: unknown) => void): Promise<InvalidationBus> {
  const sub = redis.duplicate({ enableOfflineQueue: true, lazyConnect: true });
  sub.on("error", onError);
  // A resubscription that a closing connection refuses is no error worth reporting.
  quietReplies(sub, ["subscribe"], () => {});
  await sub.connect();
  await sub.subscribe(CHANNEL);
  const handlers: ((event: Invalidation) => void)[] = [];
  // Registered after the first connection: every later "ready" is a reconnect, after which ioredis resubscribes.
  // Whatever was published meanwhile is lost, so every cache forgets everything.
  sub.on("ready", () => {
    for (const h of handlers) h({ kind: "all", id: "" });
  });
  sub.on("message", (_channel: string, message: string) => {
    try {
      const event = JSON.parse(message) as Invalidation;
      for (const h of handlers) h(event);
    } catch (err) {
      onError(err);
    }
  });
  return {
    publish: (event) => void redis.publish(CHANNEL, JSON.stringify(event)).catch(onError),
    subscribe: (handler) => void handlers.push(handler),
    close: async () => void sub.disconnect(),
  };
}

interface Entry {
  session: SessionRow;
  user: UserRow;
  until: number;
}

/**
 * A short-lived cache of validated sessions, so that an authenticated request costs no database round trip.
 * Exact on one node (every change invalidates synchronously); across nodes, invalidations travel over the bus,
 * and an entry lives at most `ttlMs` anyway, which bounds staleness if the bus loses a message.
 */
export class SessionCache {
  private readonly entries = new Map<string, Entry>();
  /** bumped by every invalidation: a lookup that started before one must not repopulate the cache */
  private generation = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly bus: InvalidationBus,
    private readonly maxEntries = 50_000,
  ) {
    bus.subscribe((event) => this.drop(event));
  }

  get(id: string): { session: SessionRow; user: UserRow } | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    if (Date.now() >= e.until) {
      this.entries.delete(id);
      return undefined;
    }
    return e;
  }

  /** The generation to hand back to `set` after a database read. */
  get epoch(): number {
    return this.generation;
  }

  set(session: SessionRow, user: UserRow, readAtEpoch: number): void {
    if (this.ttlMs <= 0 || readAtEpoch !== this.generation) return;
    if (this.entries.size >= this.maxEntries) {
      // A Map iterates in insertion order: the first key is the oldest entry.
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(session.id, { session, user, until: Date.now() + this.ttlMs });
  }

  /** Drops the entry here at once and tells the other nodes. */
  invalidate(event: Invalidation): void {
    this.drop(event);
    this.bus.publish(event);
  }

  private drop(event: Invalidation): void {
    if (event.kind === "room") return;
    this.generation++;
    if (event.kind === "all") {
      this.entries.clear();
      return;
    }
    if (event.kind === "session") {
      this.entries.delete(event.id);
      return;
    }
    for (const [id, e] of this.entries) if (e.user.id === event.id) this.entries.delete(id);
  }
}
