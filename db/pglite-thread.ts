import { Duplex } from "node:stream";
import { MessageChannel, type MessagePort, Worker } from "node:worker_threads";

/**
 * The embedded database in a worker thread (db/pglite-worker.mjs), reached through `pg` as if it were a
 * PostgreSQL server: each connection is a MessagePort carrying the wire protocol. PGlite runs every statement
 * synchronously in WebAssembly on the thread that calls it; on the server's own thread a batch of inserts
 * (1–40 ms) stalled every socket of the node. In a thread of its own it takes turns with the event loop, and
 * the server has one database code path, the PostgreSQL one, for both databases.
 */
export class PgliteThread {
  private constructor(private readonly worker: Worker) {}

  /** Starts the worker and opens the database (`memory`, or a data directory); rejects if PGlite cannot open. */
  static async start(dataDir: string): Promise<PgliteThread> {
    const worker = new Worker(new URL("./pglite-worker.mjs", import.meta.url), { workerData: { dataDir } });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (msg: { type: string; message?: string }) => {
        if (msg.type === "ready") done();
        else if (msg.type === "failed") done(new Error(`PGlite could not open ${dataDir}: ${msg.message}`));
      };
      const onError = (err: Error) => done(err);
      const onExit = (code: number) => done(new Error(`the PGlite worker exited (${code}) before it was ready`));
      const done = (err?: Error) => {
        worker.off("message", onMessage);
        worker.off("error", onError);
        worker.off("exit", onExit);
        if (err) {
          void worker.terminate();
          reject(err);
        } else resolve();
      };
      worker.on("message", onMessage);
      worker.on("error", onError);
      worker.on("exit", onExit);
    });
    // An uncaught failure later surfaces as a closed connection in `pg`; without a listener it would be thrown.
    worker.on("error", () => {});
    // Open connections keep the process alive (their ports), as sockets to PostgreSQL do; the thread itself not.
    worker.unref();
    return new PgliteThread(worker);
  }

  /** A new connection's byte stream, for `pg`'s `stream` option. */
  connect(): PortStream {
    const { port1, port2 } = new MessageChannel();
    this.worker.postMessage({ type: "connect", port: port2 }, [port2]);
    return new PortStream(port1);
  }

  /** Closes the database (its files are consistent on disk) and stops the thread. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => {
      const onMessage = (msg: { type: string }) => {
        if (msg.type === "closed") resolve();
      };
      this.worker.on("message", onMessage);
      this.worker.once("exit", () => resolve());
    });
    this.worker.postMessage({ type: "close" });
    await closed;
    await this.worker.terminate();
  }
}

/** The socket-like stream `pg` writes to: protocol bytes both ways over a MessagePort. */
class PortStream extends Duplex {
  private open = true;

  constructor(private readonly port: MessagePort) {
    super();
    port.on("message", (data: Uint8Array) => {
      this.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    });
    port.on("close", () => {
      this.open = false;
      this.push(null);
      this.destroy();
    });
  }

  /** `pg` calls connect(port, host) on its stream, then waits for "connect". */
  connect(): this {
    setImmediate(() => this.emit("connect"));
    return this;
  }

  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  /** `pg`'s pool unrefs an idle client's socket (allowExitOnIdle) and refs it when it is used again. */
  ref(): this {
    this.port.ref();
    return this;
  }

  unref(): this {
    this.port.unref();
    return this;
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (!this.open) {
      callback(new Error("the database connection is closed"));
      return;
    }
    this.port.postMessage(chunk);
    callback();
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (err?: Error | null) => void): void {
    this._write(Buffer.concat(chunks.map((c) => c.chunk)), "binary", callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.end_();
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.end_();
    callback(err);
  }

  private end_(): void {
    if (!this.open) return;
    this.open = false;
    this.port.postMessage(null);
    this.port.close();
  }
}
