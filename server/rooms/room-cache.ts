import { BoundedMap } from "../bounded-map.ts";

/**
 * Per-room version numbers for the caches of the rooms domain: a change to a room bumps its epoch (here and,
 * through the invalidation bus, on every node); `forgetAll` (the bus may have lost messages) makes every
 * cached value stale at once.
 */
export class RoomEpochs {
  private readonly epochs = new Map<string, number>();
  private generation = 0;

  bump(roomId: string): void {
    this.epochs.set(roomId, (this.epochs.get(roomId) ?? 0) + 1);
  }

  forgetAll(): void {
    this.generation++;
  }

  /** The version a value read now belongs to. */
  version(roomId: string): string {
    return `${this.generation}:${this.epochs.get(roomId) ?? 0}`;
  }
}

/**
 * Values read from the database about one room, served from memory while the room's version is unchanged,
 * for `ttlMs` at most (a backstop: invalidations are exact). A read that raced a change is not kept: it is
 * stored under the version it started with, which no longer matches. Concurrent misses on one key share one
 * read, and each entry lives between half and all of `ttlMs`: entries filled together (a thousand members
 * starting to chat) must not all expire in the same instant and send a thousand reads at once.
 */
export class RoomCache<V> {
  private readonly entries: BoundedMap<string, { value: V; version: string; until: number }>;
  private readonly loading = new Map<string, { version: string; value: Promise<V> }>();

  constructor(
    private readonly epochs: RoomEpochs,
    max: number,
    private readonly ttlMs: number,
  ) {
    this.entries = new BoundedMap(max);
  }

  async get(roomId: string, key: string, load: () => Promise<V>): Promise<V> {
    const id = `${roomId}:${key}`;
    const version = this.epochs.version(roomId);
    const hit = this.entries.get(id);
    if (hit && hit.version === version && hit.until > Date.now()) return hit.value;
    const pending = this.loading.get(id);
    if (pending && pending.version === version) return pending.value;
    const value = load();
    this.loading.set(id, { version, value });
    try {
      const loaded = await value;
      if (this.ttlMs > 0) {
        this.entries.set(id, { value: loaded, version, until: Date.now() + this.ttlMs * (0.5 + Math.random() / 2) });
      }
      return loaded;
    } finally {
      if (this.loading.get(id)?.value === value) this.loading.delete(id);
    }
  }

  clear(): void {
    this.entries.clear();
  }
}
