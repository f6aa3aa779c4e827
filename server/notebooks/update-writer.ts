import * as Y from "yjs";
import type { Logger } from "../log.ts";
import type { NotebookStore } from "./store.ts";

interface Pending {
  notebookId: string;
  data: Uint8Array;
  resolve: () => void;
}

const RETRY_MS = [100, 250, 500, 1000, 2000];

/**
 * Appends accepted updates to the log in batches: a batch is cut `flushMs` after its first update (and
 * everything that arrives while a write is in flight goes into the next one), and each notebook's updates in a
 * batch are merged into one row (`Y.mergeUpdates`): a room typing at 1,000 updates/s costs the database a
 * hundred small inserts a second instead of a thousand rows. A failed write (database unreachable) is retried,
 * with a growing delay, until it succeeds: an accepted update is never dropped while the process lives, and
 * `close` waits for the queue to empty.
 */
export class UpdateWriter {
  private queue: Pending[] = [];
  private inFlight: Pending[] = [];
  private writing: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly store: NotebookStore,
    private readonly log: Logger,
    private readonly flushMs = 25,
    private readonly maxBatch = 2000,
  ) {}

  write(notebookId: string, data: Uint8Array): Promise<void> {
    return new Promise((resolve) => {
      this.queue.push({ notebookId, data, resolve });
      this.writing ??= new Promise<void>((started) => setTimeout(started, this.closed ? 0 : this.flushMs))
        .then(() => this.drain())
        .finally(() => {
          this.writing = undefined;
        });
    });
  }

  /** Resolves once every update queued so far for the notebook is stored. */
  async flushed(notebookId: string): Promise<void> {
    const mine = [...this.inFlight, ...this.queue].filter((p) => p.notebookId === notebookId);
    if (mine.length === 0) return;
    await new Promise<void>((resolve) => {
      const last = mine[mine.length - 1] as Pending;
      const done = last.resolve;
      last.resolve = () => {
        done();
        resolve();
      };
    });
  }

  /** Bytes queued for a notebook and not yet stored. */
  pendingBytes(notebookId: string): number {
    let n = 0;
    for (const p of [...this.inFlight, ...this.queue]) if (p.notebookId === notebookId) n += p.data.byteLength;
    return n;
  }

  private async drain(): Promise<void> {
    let failures = 0;
    while (this.queue.length > 0) {
      this.inFlight = this.queue.splice(0, this.maxBatch);
      try {
        await this.store.append(merged(this.inFlight));
        failures = 0;
        const done = this.inFlight;
        this.inFlight = [];
        for (const p of done) p.resolve();
      } catch (err) {
        if (isForeignKeyViolation(err) && (await this.oneByOne())) continue;
        // Back to the head of the queue, in order; the next batch retries them.
        this.queue.unshift(...this.inFlight);
        this.inFlight = [];
        const delay = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)] as number;
        failures += 1;
        this.log.warn({ err: (err as Error).message, queued: this.queue.length }, "storing notebook updates failed");
        if (this.closed && failures > RETRY_MS.length) {
          this.log.error({ lost: this.queue.length }, "notebook updates not stored at shutdown");
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
      if (this.queue.length > 0 && !this.closed) await new Promise((resolve) => setTimeout(resolve, this.flushMs));
    }
  }

  /**
   * A batch refused because a notebook is gone (its room was deleted): stores the rest one by one and drops the
   * orphans. Returns false when another error stopped it (the batch is retried as usual).
   */
  private async oneByOne(): Promise<boolean> {
    while (this.inFlight.length > 0) {
      const p = this.inFlight[0] as Pending;
      try {
        await this.store.append([{ notebookId: p.notebookId, data: p.data }]);
      } catch (err) {
        if (!isForeignKeyViolation(err)) return false;
        this.log.warn({ notebookId: p.notebookId }, "update for a deleted notebook dropped");
      }
      this.inFlight.shift();
      p.resolve();
    }
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.writing) await this.writing;
  }
}

function isForeignKeyViolation(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e)
    if (e.code === "23503") return true;
  return false;
}

/** One row per notebook: its updates in the batch, merged in order (what Yjs would store after applying them). */
function merged(batch: readonly Pending[]): { notebookId: string; data: Uint8Array }[] {
  const byNotebook = new Map<string, Uint8Array[]>();
  for (const p of batch) {
    const list = byNotebook.get(p.notebookId);
    if (list) list.push(p.data);
    else byNotebook.set(p.notebookId, [p.data]);
  }
  return [...byNotebook].map(([notebookId, updates]) => ({
    notebookId,
    data: updates.length === 1 ? (updates[0] as Uint8Array) : Y.mergeUpdates(updates),
  }));
}
