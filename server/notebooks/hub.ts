import * as awarenessProtocol from "y-protocols/awareness";
import * as Y from "yjs";
import type { Logger } from "../log.ts";
import { Merger } from "./merger.ts";
import type { NotebookRelay, RelayMessage } from "./relay.ts";
import type { NotebookRow, NotebookStore } from "./store.ts";
import { UpdateWriter } from "./update-writer.ts";

/** Origin of a change that came from another node (already stored there). */
export const REMOTE = Symbol("remote");
/** Origin of a change the server makes itself (import, restore). */
export const SERVER = Symbol("server");

/** A connection, as the hub sees it. */
export interface Peer {
  send(message: Uint8Array): void;
  /** awareness client ids this connection announced */
  readonly clientIds: Set<number>;
}

export type DocListener = (update: Uint8Array, origin: unknown) => void;

/** A notebook held in memory while someone is connected to it on this node. */
export class LiveNotebook {
  readonly doc = new Y.Doc();
  readonly awareness = new awarenessProtocol.Awareness(this.doc);
  readonly peers = new Set<Peer>();
  /** stored size: the state it was loaded from and every update since, in bytes (an upper bound) */
  bytes = 0;
  /** bytes of updates logged by this node since the last compaction */
  logged = 0;
  /** when this node last compacted it (ms since the epoch) */
  compactedAt = 0;
  unloadTimer: NodeJS.Timeout | undefined;
  reloadTimer: NodeJS.Timeout | undefined;
  /** awareness client ids announced through other nodes, and by which node */
  readonly remoteClients = new Map<number, string>();

  constructor(public row: NotebookRow) {
    // The server is not a participant.
    this.awareness.setLocalState(null);
  }

  get id(): string {
    return this.row.id;
  }
}

export interface HubOptions {
  /** how long a notebook stays in memory after its last connection left */
  idleMs?: number;
  /**
   * bytes logged since the last compaction after which the notebook is compacted again, at least (the more the
   * document weighs, the rarer: compacting costs in proportion to its size)
   */
  compactBytes?: number;
  /** the shortest time between two compactions of one notebook by this node */
  compactIntervalMs?: number;
}

/**
 * The notebooks open on this node. Loading reads the compacted state and the log; every change is broadcast to
 * the local connections at once, and a change made here (by a client or the server) is appended to the log and,
 * once stored, relayed to the other nodes. A notebook nobody is connected to is unloaded after `idleMs`.
 */
export class NotebookHub {
  private readonly live = new Map<string, LiveNotebook>();
  private readonly loading = new Map<string, Promise<LiveNotebook>>();
  /** relayed messages for notebooks being loaded */
  private readonly early = new Map<string, RelayMessage[]>();
  private readonly writer: UpdateWriter;
  private readonly merger: Merger;
  private readonly compacting = new Set<string>();
  private readonly idleMs: number;
  private readonly compactBytes: number;
  private readonly compactIntervalMs: number;

  constructor(
    private readonly store: NotebookStore,
    private readonly relay: NotebookRelay,
    private readonly log: Logger,
    options: HubOptions = {},
  ) {
    this.idleMs = options.idleMs ?? 10_000;
    this.compactBytes = options.compactBytes ?? 256 * 1024;
    this.compactIntervalMs = options.compactIntervalMs ?? 30_000;
    this.writer = new UpdateWriter(store, log);
    this.merger = new Merger(log);
    relay.onMessage((message) => {
      const live = this.live.get(message.notebookId);
      if (live) return this.applyRelayed(live, message);
      // Relayed while the notebook loads (the stream is read from before the database): kept for when it is in.
      this.early.get(message.notebookId)?.push(message);
    });
    relay.onGap(() => void this.reloadAll());
  }

  private applyRelayed(live: LiveNotebook, { notebookId, node, kind, data }: RelayMessage): void {
    try {
      if (kind === "u") {
        Y.applyUpdate(live.doc, data, REMOTE);
        // An update that builds on one this node never received (relayed by a node that died before it could
        // publish everything) waits in the document unapplied: the database has what is missing.
        if (hasGaps(live.doc)) this.reloadSoon(live);
      } else awarenessProtocol.applyAwarenessUpdate(live.awareness, data, { node } satisfies RemoteNode);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, notebookId }, "relayed notebook message refused");
    }
  }

  /** Notebooks in memory on this node. */
  get size(): number {
    return this.live.size;
  }

  get(notebookId: string): LiveNotebook | undefined {
    return this.live.get(notebookId);
  }

  /** The notebook, loaded if needed; concurrent callers share one load. */
  async open(row: NotebookRow): Promise<LiveNotebook> {
    const found = this.live.get(row.id);
    if (found) {
      found.row = row;
      return found;
    }
    let loading = this.loading.get(row.id);
    if (!loading) {
      loading = this.load(row).finally(() => this.loading.delete(row.id));
      this.loading.set(row.id, loading);
    }
    return loading;
  }

  private async load(row: NotebookRow): Promise<LiveNotebook> {
    // The first notebook opened on this node starts the compaction worker, long before its first compaction.
    this.merger.warm();
    // Positioned on the stream (a minute back) before reading the database: nothing falls between the two.
    // What the stream delivers meanwhile waits in `early` and is applied once the document is built.
    const early: RelayMessage[] = [];
    this.early.set(row.id, early);
    let stored: Awaited<ReturnType<NotebookStore["load"]>>;
    try {
      await this.relay.watch(row.id);
      stored = await this.store.load(row.id);
    } finally {
      this.early.delete(row.id);
    }
    const live = new LiveNotebook(row);
    for (const u of stored.updates) {
      Y.applyUpdate(live.doc, u, REMOTE);
      live.bytes += u.byteLength;
    }
    live.doc.on("update", (update: Uint8Array, origin: unknown) => this.onUpdate(live, update, origin));
    live.awareness.on("update", (change: AwarenessChange, origin: unknown) => this.onAwareness(live, change, origin));
    this.live.set(row.id, live);
    for (const message of early) this.applyRelayed(live, message);
    // A log that other nodes (or an earlier life of this one) left long is compacted on first use.
    if (stored.logged >= 100) this.compact(live);
    return live;
  }

  attach(live: LiveNotebook, peer: Peer): void {
    clearTimeout(live.unloadTimer);
    live.unloadTimer = undefined;
    live.peers.add(peer);
  }

  detach(live: LiveNotebook, peer: Peer): void {
    if (!live.peers.delete(peer)) return;
    if (peer.clientIds.size > 0) awarenessProtocol.removeAwarenessStates(live.awareness, [...peer.clientIds], peer);
    this.release(live);
  }

  /** Lets an unused notebook (opened by the server for an edit) unload like one its last client left. */
  release(live: LiveNotebook): void {
    if (live.peers.size === 0 && !live.unloadTimer && this.live.get(live.id) === live)
      live.unloadTimer = setTimeout(() => void this.unload(live), this.idleMs);
  }

  /** Resolves once every change made so far on this node to the notebook is stored. */
  flushed(live: LiveNotebook): Promise<void> {
    return this.writer.flushed(live.id);
  }

  /** A change made by the server (import, restore): stored, relayed and broadcast like a client's. */
  edit(live: LiveNotebook, change: (doc: Y.Doc) => void): void {
    live.doc.transact(() => change(live.doc), SERVER);
  }

  private onUpdate(live: LiveNotebook, update: Uint8Array, origin: unknown): void {
    const message = syncUpdateMessage(update);
    for (const peer of live.peers) if (peer !== origin) peer.send(message);
    if (origin === REMOTE) return;
    live.bytes += update.byteLength;
    live.logged += update.byteLength;
    // Relayed at once, stored a moment later (in a batch): a node that opens the notebook meanwhile replays the
    // stream's last minute after reading the database, and Yjs ignores what it already has.
    this.relay.publish(live.id, "u", update);
    void this.writer.write(live.id, update);
    // Compacting replays the whole document on this thread: rarely, and the bigger the document, the rarer.
    const due = live.logged >= Math.max(this.compactBytes, live.bytes - live.logged);
    if (due && Date.now() - live.compactedAt >= this.compactIntervalMs) this.compact(live);
  }

  private onAwareness(live: LiveNotebook, { added, updated, removed }: AwarenessChange, origin: unknown): void {
    const changed = [...added, ...updated, ...removed];
    if (isPeer(origin)) {
      for (const id of [...added, ...updated]) origin.clientIds.add(id);
      for (const id of removed) origin.clientIds.delete(id);
    } else if (isRemoteNode(origin)) {
      for (const id of [...added, ...updated]) live.remoteClients.set(id, origin.node);
    }
    for (const id of removed) live.remoteClients.delete(id);
    const update = awarenessProtocol.encodeAwarenessUpdate(live.awareness, changed);
    const message = awarenessMessage(update);
    for (const peer of live.peers) peer.send(message);
    // Only what this node's clients said travels; other nodes time out (or forget) states on their own.
    if (!isRemoteNode(origin) && origin !== REMOTE && origin !== "timeout") this.relay.publish(live.id, "a", update);
  }

  /** Compacts a notebook's stored log now (operators, tests); undefined when there was nothing to merge. */
  compactNow(notebookId: string): Promise<number | undefined> {
    return this.store.compact(notebookId, (updates) => this.merger.merge(updates));
  }

  /** Compacts in the background, one compaction per notebook at a time. */
  private compact(live: LiveNotebook): void {
    if (this.compacting.has(live.id)) return;
    this.compacting.add(live.id);
    live.logged = 0;
    live.compactedAt = Date.now();
    void this.writer
      .flushed(live.id)
      .then(() => this.compactNow(live.id))
      .then((bytes) => {
        if (bytes !== undefined) live.bytes = bytes + this.writer.pendingBytes(live.id);
      })
      .catch((err) => this.log.warn({ err: (err as Error).message, notebookId: live.id }, "notebook compaction failed"))
      .finally(() => this.compacting.delete(live.id));
  }

  private async unload(live: LiveNotebook): Promise<void> {
    live.unloadTimer = undefined;
    const idle = () => live.peers.size === 0 && !live.unloadTimer && this.live.get(live.id) === live;
    // Stored first: a load that starts once it is gone must find every update in the database.
    while (idle() && this.writer.pendingBytes(live.id) > 0) await this.writer.flushed(live.id);
    if (!idle()) return;
    this.live.delete(live.id);
    clearTimeout(live.reloadTimer);
    this.relay.unwatch(live.id);
    if (live.logged > 0) this.compact(live);
    live.awareness.destroy();
    live.doc.destroy();
  }

  /** Drops the awareness of clients that were connected through nodes that died (their cursors vanish). */
  forgetNodes(nodes: readonly string[]): void {
    const dead = new Set(nodes);
    for (const live of this.live.values()) {
      const ids = [...live.remoteClients].filter(([, node]) => dead.has(node)).map(([id]) => id);
      if (ids.length > 0) awarenessProtocol.removeAwarenessStates(live.awareness, ids, REMOTE);
    }
  }

  /** Replays every open document from the database (after the relay may have missed messages). */
  async reloadAll(): Promise<void> {
    for (const live of [...this.live.values()]) await this.reload(live);
  }

  private async reload(live: LiveNotebook): Promise<void> {
    try {
      const stored = await this.store.load(live.id);
      for (const u of stored.updates) Y.applyUpdate(live.doc, u, REMOTE);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, notebookId: live.id }, "notebook reload failed");
    }
  }

  /** Reloads a document with gaps from the database, retrying (with a growing delay) while gaps remain. */
  private reloadSoon(live: LiveNotebook, attempt = 0): void {
    if (live.reloadTimer || attempt > 8) return;
    live.reloadTimer = setTimeout(
      async () => {
        await this.reload(live);
        live.reloadTimer = undefined;
        if (this.live.get(live.id) === live && hasGaps(live.doc)) this.reloadSoon(live, attempt + 1);
      },
      50 * 2 ** attempt,
    );
  }

  /** Waits for every accepted update to be stored, then drops every document. */
  async close(): Promise<void> {
    await this.writer.close();
    for (const live of this.live.values()) {
      clearTimeout(live.unloadTimer);
      clearTimeout(live.reloadTimer);
      live.awareness.destroy();
      live.doc.destroy();
    }
    this.live.clear();
    await this.merger.close();
    await this.relay.close();
  }
}

interface AwarenessChange {
  added: number[];
  updated: number[];
  removed: number[];
}

/** Whether the document holds updates it could not apply yet for want of the ones they build on. */
const hasGaps = (doc: Y.Doc) => doc.store.pendingStructs !== null || doc.store.pendingDs !== null;

/** Origin of an awareness change relayed from another node. */
interface RemoteNode {
  node: string;
}

const isRemoteNode = (origin: unknown): origin is RemoteNode =>
  typeof origin === "object" && origin !== null && "node" in origin && !("send" in origin);

const isPeer = (origin: unknown): origin is Peer =>
  typeof origin === "object" && origin !== null && "clientIds" in origin && "send" in origin;

/** A y-websocket sync message carrying one update. */
export function syncUpdateMessage(update: Uint8Array): Uint8Array {
  return frame(0, 2, update);
}

export function awarenessMessage(update: Uint8Array): Uint8Array {
  return frame(1, undefined, update);
}

/** [type][subtype?][varUint8Array] without the encoder's overhead (this runs for every update and every peer). */
function frame(type: number, sub: number | undefined, payload: Uint8Array): Uint8Array {
  const len = varUintLength(payload.byteLength);
  const head = sub === undefined ? 1 : 2;
  const out = new Uint8Array(head + len + payload.byteLength);
  out[0] = type;
  if (sub !== undefined) out[1] = sub;
  let n = payload.byteLength;
  let i = head;
  while (n > 0x7f) {
    out[i++] = 0x80 | (n & 0x7f);
    n >>>= 7;
  }
  out[i++] = n;
  out.set(payload, i);
  return out;
}

function varUintLength(n: number): number {
  let len = 1;
  while (n > 0x7f) {
    n >>>= 7;
    len++;
  }
  return len;
}
