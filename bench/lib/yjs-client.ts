/**
 * A light y-websocket client for bench/notebook.ts: one `ws` socket and one Y.Doc, without WebsocketProvider's
 * reconnection, broadcast channel, awareness timers and event emitters (hundreds of them share one process).
 * On the wire it does what the provider does: sync step 1 on open, answers the server's step 1 with step 2,
 * applies every step 2 and update it receives to its document, sends each local change as an update, and
 * announces one awareness state. Received awareness is counted, not kept (nothing here reads it).
 *
 * Two economies, so that one process can play hundreds of editors (neither changes what the server sees):
 * - the updates that arrive in one read of the socket are applied in one transaction (the provider applies
 *   each in its own): a busy client then pays Yjs's per-transaction work (state vectors, events) once per read;
 * - a change is encoded only for the client's own edits (`edit`), not for every remote transaction as the
 *   provider's permanent `doc.on("update")` listener does.
 */
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import WebSocket from "ws";
import * as awarenessProtocol from "y-protocols/awareness";
import * as syncProtocol from "y-protocols/sync";
import * as Y from "yjs";
import { COLLAB_PATH, MESSAGE } from "../../shared/notebook/protocol.ts";

/** Called after each remote transaction with the clocks it added for one client: [from, to). */
export type ReceiveHandler = (client: number, from: number, to: number) => void;

export class YjsClient {
  readonly doc = new Y.Doc();
  /** the server's step 2 arrived: the document holds everything the server had */
  synced = false;
  /** close code, once closed */
  closedWith: number | undefined;
  awarenessMessages = 0;
  /** "permission denied" messages */
  denied = 0;
  private onReceive: ReceiveHandler | undefined;
  private onSynced: (() => void) | undefined;
  /** updates received and not yet applied (they are applied together once the current read is handled) */
  private inbox: Uint8Array[] = [];
  private readonly sendUpdate = (update: Uint8Array) =>
    this.send(frame(MESSAGE.sync, (e) => syncProtocol.writeUpdate(e, update)));

  private constructor(private readonly ws: WebSocket) {
    ws.binaryType = "nodebuffer";
    ws.on("message", (data: Buffer) => this.receive(data));
    ws.on("close", (code: number) => {
      this.closedWith = code;
    });
    this.doc.on("afterTransaction", (tr: Y.Transaction) => {
      if (tr.origin !== this || !this.onReceive) return;
      for (const [client, to] of tr.afterState) {
        const from = tr.beforeState.get(client) ?? 0;
        if (to > from) this.onReceive(client, from, to);
      }
    });
  }

  /**
   * Opens `/collab/<notebookId>` on `baseUrl` (with `?token=` when given) and resolves once synced; rejects on
   * a refused upgrade, a close, or after `timeoutMs`.
   */
  static connect(baseUrl: string, notebookId: string, token?: string, timeoutMs = 30_000): Promise<YjsClient> {
    const url = `${baseUrl.replace(/^http/, "ws")}${COLLAB_PATH}${notebookId}${token ? `?token=${token}` : ""}`;
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const client = new YjsClient(ws);
    return new Promise<YjsClient>((resolve, reject) => {
      const onError = (err: Error) => fail(err);
      const onClose = (code: number) => fail(new Error(`closed with ${code} before it synced`));
      const timer = setTimeout(() => fail(new Error(`not synced after ${timeoutMs} ms`)), timeoutMs);
      const fail = (err: Error) => {
        clearTimeout(timer);
        ws.terminate();
        reject(err);
      };
      ws.once("unexpected-response", (_req, res) => fail(new Error(`upgrade refused: ${res.statusCode}`)));
      ws.on("error", onError);
      ws.once("close", onClose);
      ws.once("open", () => {
        client.send(frame(MESSAGE.sync, (e) => syncProtocol.writeSyncStep1(e, client.doc)));
        const awareness = new awarenessProtocol.Awareness(client.doc);
        awareness.setLocalState({ user: { name: `bench ${client.doc.clientID}` } });
        const update = awarenessProtocol.encodeAwarenessUpdate(awareness, [client.doc.clientID]);
        awareness.destroy();
        client.send(frame(MESSAGE.awareness, (e) => encoding.writeVarUint8Array(e, update)));
      });
      client.onSynced = () => {
        clearTimeout(timer);
        ws.off("error", onError);
        ws.off("close", onClose);
        ws.on("error", () => {});
        resolve(client);
      };
    });
  }

  /** Reports the clocks each remote transaction adds (see {@link ReceiveHandler}). */
  listen(handler: ReceiveHandler): void {
    this.onReceive = handler;
  }

  /** Makes a local change in one transaction and sends it as one update, at once. */
  edit(change: (tr: Y.Transaction) => void): void {
    this.doc.on("update", this.sendUpdate);
    try {
      this.doc.transact(change);
    } finally {
      this.doc.off("update", this.sendUpdate);
    }
  }

  close(): void {
    this.onReceive = undefined;
    this.ws.terminate();
    this.doc.destroy();
  }

  private send(message: Uint8Array): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(message);
  }

  private receive(data: Buffer): void {
    const decoder = decoding.createDecoder(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    const type = decoding.readVarUint(decoder);
    if (type === MESSAGE.sync) {
      const sub = decoding.readVarUint(decoder);
      if (sub === syncProtocol.messageYjsSyncStep1) {
        const stateVector = decoding.readVarUint8Array(decoder);
        this.send(frame(MESSAGE.sync, (e) => syncProtocol.writeSyncStep2(e, this.doc, stateVector)));
        return;
      }
      // `ws` emits every message of one read before the microtask queue runs.
      if (this.inbox.push(decoding.readVarUint8Array(decoder)) === 1) queueMicrotask(() => this.applyInbox());
      if (sub === syncProtocol.messageYjsSyncStep2 && !this.synced)
        queueMicrotask(() => {
          this.synced = true;
          this.onSynced?.();
          this.onSynced = undefined;
        });
    } else if (type === MESSAGE.awareness) {
      this.awarenessMessages++;
    } else if (type === MESSAGE.auth) {
      this.denied++;
    }
  }

  private applyInbox(): void {
    const updates = this.inbox;
    this.inbox = [];
    if (this.doc.isDestroyed) return;
    this.doc.transact(() => {
      for (const u of updates) Y.applyUpdate(this.doc, u, this);
    }, this);
  }
}

function frame(type: number, write: (e: encoding.Encoder) => void): Uint8Array {
  const e = encoding.createEncoder();
  encoding.writeVarUint(e, type);
  write(e);
  return encoding.toUint8Array(e);
}
