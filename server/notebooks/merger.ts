import { Worker } from "node:worker_threads";
import * as Y from "yjs";
import type { Logger } from "../log.ts";

type Reply = { id: number; state?: Uint8Array; error?: string };

/**
 * Replays updates into one garbage-collected state in a worker thread: compacting a big notebook takes tens of
 * milliseconds of Yjs work that would otherwise stall every connection of the node. If the worker cannot start,
 * the work runs here instead.
 */
export class Merger {
  private worker: Worker | undefined;
  private readonly waiting = new Map<number, { resolve: (s: Uint8Array) => void; reject: (e: Error) => void }>();
  private next = 0;
  private broken = false;

  constructor(private readonly log: Logger) {}

  /**
   * Starts the worker ahead of its first merge: starting one (a new isolate that loads Yjs) costs a few hundred
   * milliseconds of CPU, which should not land in the middle of a busy notebook's first compaction.
   */
  warm(): void {
    this.start();
  }

  merge(updates: Uint8Array[]): Promise<Uint8Array> {
    const worker = this.start();
    if (!worker) return Promise.resolve(mergeHere(updates));
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.postMessage({ id, updates });
    });
  }

  private start(): Worker | undefined {
    if (this.worker || this.broken) return this.worker;
    try {
      const worker = new Worker(new URL("./merge-worker.mjs", import.meta.url));
      worker.unref();
      worker.on("message", ({ id, state, error }: Reply) => {
        const waiter = this.waiting.get(id);
        this.waiting.delete(id);
        if (state) waiter?.resolve(state);
        else waiter?.reject(new Error(error ?? "merge failed"));
      });
      worker.on("error", (err) => this.fail(err));
      worker.on("exit", () => this.fail(new Error("merge worker exited")));
      this.worker = worker;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "merge worker unavailable: compacting on the main thread");
      this.broken = true;
    }
    return this.worker;
  }

  private fail(err: Error): void {
    this.worker = undefined;
    for (const waiter of this.waiting.values()) waiter.reject(err);
    this.waiting.clear();
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    this.broken = true;
    await worker?.terminate();
  }
}

function mergeHere(updates: Uint8Array[]): Uint8Array {
  const doc = new Y.Doc();
  try {
    for (const u of updates) Y.applyUpdate(doc, u);
    return Y.encodeStateAsUpdate(doc);
  } finally {
    doc.destroy();
  }
}
