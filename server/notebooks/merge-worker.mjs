// Merges a notebook's stored state and log into one garbage-collected state, off the server's event loop.
// Plain JavaScript so that it runs in a worker thread whatever loader the main thread uses.
import { setPriority } from "node:os";
import { parentPort } from "node:worker_threads";
import * as Y from "yjs";

// A compaction can wait; the connections cannot. On Linux, priority 0 names this thread alone, so a lower one
// lets the event loop take the core first when both are ready (compacting a big notebook takes 100+ ms of CPU).
try {
  setPriority(10);
} catch {
  // not allowed here: the scheduler shares the core evenly, as before
}

parentPort?.on("message", ({ id, updates }) => {
  const doc = new Y.Doc();
  try {
    for (const u of updates) Y.applyUpdate(doc, u);
    const state = Y.encodeStateAsUpdate(doc);
    parentPort?.postMessage({ id, state }, [state.buffer]);
  } catch (err) {
    parentPort?.postMessage({ id, error: err instanceof Error ? err.message : String(err) });
  } finally {
    doc.destroy();
  }
});
