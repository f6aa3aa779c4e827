import type { Socket } from "node:net";
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import type { WebSocket } from "ws";
import * as authProtocol from "y-protocols/auth";
import * as awarenessProtocol from "y-protocols/awareness";
import * as syncProtocol from "y-protocols/sync";
import * as Y from "yjs";
import { CLOSE, MESSAGE, NOTEBOOK_LIMITS, READ_ONLY_REASON } from "../../shared/notebook/protocol.ts";
import { corkUntilTurnEnds, rawSocketOf } from "../realtime/coalesce.ts";
import type { SocketData } from "../realtime/types.ts";
import type { LiveNotebook, NotebookHub, Peer } from "./hub.ts";

/** Above this many bytes waiting to be sent, a client is too slow to follow and is dropped. */
const SEND_BUFFER_MAX = 16 * 1024 * 1024;
/** Awareness client ids one connection may announce (a Yjs client has one; a few more for regenerated ids). */
const AWARENESS_IDS_MAX = 4;
/** A read-only client that keeps editing is told again at most this often. */
const DENIED_NOTICE_MS = 5000;

/** What the connection's user may do, re-evaluated whenever their room or the notebook changes. */
export interface Access {
  writable: boolean;
}

/**
 * One y-websocket connection: speaks the sync and awareness protocols with the client, drops a read-only
 * client's edits (telling it so with the protocol's "permission denied" message), and closes with a documented
 * code on anything it cannot accept. Nothing a client sends can throw out of here.
 */
export class CollabConnection implements Peer {
  readonly clientIds = new Set<number>();
  private tokens: number = NOTEBOOK_LIMITS.messagesBurst;
  private refilledAt = Date.now();
  private deniedAt = 0;
  private closed = false;
  private readonly raw: Socket | undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly hub: NotebookHub,
    readonly live: LiveNotebook,
    readonly user: SocketData,
    private access: Access,
  ) {
    this.raw = rawSocketOf(ws);
    ws.binaryType = "nodebuffer";
    ws.on("message", (data: Buffer, isBinary: boolean) => this.receive(data, isBinary));
    ws.on("close", () => this.cleanUp());
    ws.on("error", () => this.cleanUp());
    hub.attach(live, this);
    const hello = encoding.createEncoder();
    encoding.writeVarUint(hello, MESSAGE.sync);
    syncProtocol.writeSyncStep1(hello, live.doc);
    this.send(encoding.toUint8Array(hello));
    const states = [...live.awareness.getStates().keys()];
    if (states.length > 0) {
      const aw = encoding.createEncoder();
      encoding.writeVarUint(aw, MESSAGE.awareness);
      encoding.writeVarUint8Array(aw, awarenessProtocol.encodeAwarenessUpdate(live.awareness, states));
      this.send(encoding.toUint8Array(aw));
    }
    if (!access.writable) this.deny();
  }

  get writable(): boolean {
    return this.access.writable;
  }

  /** Applies a re-evaluated access: a client that just became read-only is told at once. */
  setAccess(access: Access): void {
    const was = this.access.writable;
    this.access = access;
    if (was && !access.writable) this.deny();
  }

  send(message: Uint8Array): void {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return;
    if (this.ws.bufferedAmount > SEND_BUFFER_MAX) {
      this.close(CLOSE.rateLimited, "too slow to follow");
      return;
    }
    // Updates relayed to this client in one turn leave in one system call.
    corkUntilTurnEnds(this.raw);
    this.ws.send(message, { binary: true });
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.ws.close(code, reason);
    this.cleanUp();
  }

  private cleanUp(): void {
    if (this.closed) return;
    this.closed = true;
    this.hub.detach(this.live, this);
  }

  private receive(data: Buffer, isBinary: boolean): void {
    if (this.closed) return;
    if (!isBinary) {
      this.close(CLOSE.malformed, "binary messages only");
      return;
    }
    if (!this.take()) {
      this.close(CLOSE.rateLimited, "too many messages");
      return;
    }
    try {
      this.handle(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    } catch {
      this.close(CLOSE.malformed, "malformed message");
    }
  }

  private handle(message: Uint8Array): void {
    const decoder = decoding.createDecoder(message);
    const type = decoding.readVarUint(decoder);
    const { doc, awareness } = this.live;
    switch (type) {
      case MESSAGE.sync: {
        const sub = decoding.readVarUint(decoder);
        if (sub === syncProtocol.messageYjsSyncStep1) {
          const stateVector = decoding.readVarUint8Array(decoder);
          const reply = encoding.createEncoder();
          encoding.writeVarUint(reply, MESSAGE.sync);
          syncProtocol.writeSyncStep2(reply, doc, stateVector);
          this.send(encoding.toUint8Array(reply));
          return;
        }
        if (sub !== syncProtocol.messageYjsSyncStep2 && sub !== syncProtocol.messageYjsUpdate) {
          this.close(CLOSE.malformed, "unknown sync message");
          return;
        }
        this.update(decoding.readVarUint8Array(decoder));
        return;
      }
      case MESSAGE.awareness: {
        const own = this.ownStates(decoding.readVarUint8Array(decoder));
        if (own) awarenessProtocol.applyAwarenessUpdate(awareness, own, this);
        return;
      }
      case MESSAGE.queryAwareness: {
        const reply = encoding.createEncoder();
        encoding.writeVarUint(reply, MESSAGE.awareness);
        encoding.writeVarUint8Array(
          reply,
          awarenessProtocol.encodeAwarenessUpdate(awareness, [...awareness.getStates().keys()]),
        );
        this.send(encoding.toUint8Array(reply));
        return;
      }
      default:
        this.close(CLOSE.malformed, "unknown message type");
        return;
    }
  }

  private update(update: Uint8Array): void {
    if (!this.access.writable) {
      // A client answers our sync step 1 with what we lack, often nothing: only real edits are refused aloud.
      if (!isEmptyUpdate(update)) this.deny();
      return;
    }
    if (update.byteLength > NOTEBOOK_LIMITS.messageBytes) {
      this.close(CLOSE.tooLarge, "update too large");
      return;
    }
    if (this.live.bytes + update.byteLength > NOTEBOOK_LIMITS.documentBytes) {
      this.close(CLOSE.tooLarge, "document too large");
      return;
    }
    // Decoding first: bytes that are not an update are refused before they touch the document.
    Y.decodeUpdate(update);
    Y.applyUpdate(this.live.doc, update, this);
  }

  /**
   * The entries of an awareness update that this connection may set: the client ids it announced itself, or
   * new ones (at most `AWARENESS_IDS_MAX`), never one that another connection (here or on another node) owns.
   * A client cannot move or erase someone else's cursor.
   */
  private ownStates(update: Uint8Array): Uint8Array | undefined {
    const decoder = decoding.createDecoder(update);
    const count = decoding.readVarUint(decoder);
    const kept: [number, number, string][] = [];
    for (let i = 0; i < count; i++) {
      const id = decoding.readVarUint(decoder);
      const clock = decoding.readVarUint(decoder);
      const state = decoding.readVarString(decoder);
      if (this.mayAnnounce(id)) kept.push([id, clock, state]);
    }
    if (kept.length === 0) return undefined;
    if (kept.length === count) return update;
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, kept.length);
    for (const [id, clock, state] of kept) {
      encoding.writeVarUint(encoder, id);
      encoding.writeVarUint(encoder, clock);
      encoding.writeVarString(encoder, state);
    }
    return encoding.toUint8Array(encoder);
  }

  private mayAnnounce(id: number): boolean {
    if (this.clientIds.has(id)) return true;
    if (this.clientIds.size >= AWARENESS_IDS_MAX || this.live.remoteClients.has(id)) return false;
    for (const peer of this.live.peers) if (peer !== this && peer.clientIds.has(id)) return false;
    return true;
  }

  private deny(): void {
    const now = Date.now();
    if (now - this.deniedAt < DENIED_NOTICE_MS) return;
    this.deniedAt = now;
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, MESSAGE.auth);
    authProtocol.writePermissionDenied(encoder, READ_ONLY_REASON);
    this.send(encoding.toUint8Array(encoder));
  }

  /** Token bucket: `messagesBurst` at once, refilled at `messagesPerSecond`. */
  private take(): boolean {
    const now = Date.now();
    this.tokens = Math.min(
      NOTEBOOK_LIMITS.messagesBurst,
      this.tokens + ((now - this.refilledAt) / 1000) * NOTEBOOK_LIMITS.messagesPerSecond,
    );
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** An update with no structs and no deletions (what a client with nothing new answers). */
function isEmptyUpdate(update: Uint8Array): boolean {
  return update.byteLength === 2 && update[0] === 0 && update[1] === 0;
}
