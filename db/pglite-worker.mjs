// The embedded database (PGlite) in a worker thread of its own, spoken to in the PostgreSQL wire protocol over a
// MessagePort: the server talks to it with `pg`, exactly as to a PostgreSQL server, and a statement that takes
// milliseconds of WebAssembly no longer stalls every connection of the node. See db/client.ts.
// Plain JavaScript so that it runs in a worker thread whatever loader the main thread uses.

import { parentPort, workerData } from "node:worker_threads";
import { PGlite } from "@electric-sql/pglite";

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const TERMINATE = 0x58; // 'X'

/** @type {PGlite} */
let db;
/** Messages from every connection run one at a time, in arrival order: PGlite is one session. */
let chain = Promise.resolve();

function run(task) {
  chain = chain.then(task, task);
  return chain;
}

/** One client connection on its own MessagePort: splits the byte stream into protocol messages. */
function serve(port) {
  let buffer = Buffer.alloc(0);
  let started = false;
  let open = true;

  const close = () => {
    if (!open) return;
    open = false;
    port.close();
    // A connection that went away inside a transaction or with prepared statements must not leave them to the
    // next one: PGlite keeps one session for all of them.
    void run(async () => {
      try {
        if (db.isInTransaction()) await db.exec("rollback");
        await db.exec("deallocate all");
      } catch {
        // closing anyway
      }
    });
  };

  port.on("message", (msg) => {
    if (!open) return;
    if (msg === null) {
      close();
      return;
    }
    buffer = buffer.length === 0 ? Buffer.from(msg) : Buffer.concat([buffer, Buffer.from(msg)]);
    const messages = [];
    let reply = [];
    while (buffer.length >= 5 || (!started && buffer.length >= 8)) {
      let length;
      if (!started) {
        length = buffer.readInt32BE(0);
        if (buffer.length < length) break;
        const code = buffer.readInt32BE(4);
        if (length === 8 && (code === SSL_REQUEST || code === GSSENC_REQUEST)) {
          reply.push(Buffer.from("N"));
          buffer = buffer.subarray(8);
          continue;
        }
        if (length === 16 && code === CANCEL_REQUEST) {
          buffer = buffer.subarray(16);
          continue;
        }
        started = true;
      } else {
        length = 1 + buffer.readInt32BE(1);
        if (buffer.length < length) break;
        if (buffer[0] === TERMINATE) {
          buffer = Buffer.alloc(0);
          messages.push(null);
          break;
        }
      }
      messages.push(new Uint8Array(buffer.subarray(0, length)));
      buffer = buffer.subarray(length);
    }
    if (reply.length > 0) post(port, reply);
    if (messages.length === 0) return;
    reply = [];
    void run(async () => {
      for (const message of messages) {
        if (message === null) {
          post(port, reply);
          close();
          return;
        }
        if (!open) return;
        try {
          await db.execProtocolRawStream(message, { onRawData: (data) => reply.push(Buffer.from(data)) });
        } catch (err) {
          // A protocol failure the database could not answer: this connection's state is unknown, end it.
          parentPort?.postMessage({ type: "error", message: err instanceof Error ? err.message : String(err) });
          post(port, reply);
          close();
          return;
        }
      }
      post(port, reply);
    });
  });
  port.on("close", close);
}

function post(port, chunks) {
  if (chunks.length === 0) return;
  const out = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
  chunks.length = 0;
  try {
    port.postMessage(out);
  } catch {
    // the connection is gone
  }
}

parentPort?.on("message", async (msg) => {
  if (msg.type === "connect") {
    serve(msg.port);
  } else if (msg.type === "close") {
    await run(async () => {
      try {
        await db.close();
      } finally {
        parentPort?.postMessage({ type: "closed" });
      }
    });
  }
});

try {
  db = new PGlite({
    ...(workerData.dataDir === "memory" ? {} : { dataDir: workerData.dataDir }),
    // A new 16 MB WAL segment is written full of zeros first, by default: in PGlite's virtual file system that
    // stalled the statement that crossed into it for 40–50 ms (measured: one insert in ~28,000). Without the
    // zeros, a new segment costs what any other insert does; recovery does not rely on them.
    postgresqlconf: ["wal_init_zero = off"],
  });
  await db.waitReady;
  parentPort?.postMessage({ type: "ready" });
} catch (err) {
  parentPort?.postMessage({ type: "failed", message: err instanceof Error ? err.message : String(err) });
}
