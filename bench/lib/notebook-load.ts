/**
 * The load of bench/notebook.ts: notebooks with editors (light y-websocket clients, yjs-client.ts) that type into
 * the first cell's Y.Text, one character per update, and the record of who received which update when.
 *
 * Every update an editor sends is one new Yjs item of length 1: its (clientID, clock) names it. The sender
 * notes its send time under that name before the insert (all clients live in this process, on one clock); each
 * other editor, after applying a remote transaction, reports the clocks it added per client, and the receipt
 * time − send time is one latency sample. Nothing needs to be carried in the text, and a receipt is counted
 * when the update is integrated into the receiver's document (an update held back for a missing dependency
 * counts when it lands).
 */
import * as Y from "yjs";
import { cellsOf, insertCell } from "../../shared/notebook/model.ts";
import type { ServerChild } from "./child.ts";
import { Samples, sleep } from "./realtime.ts";
import { YjsClient } from "./yjs-client.ts";

export interface Editor {
  index: number;
  notebook: number;
  node: number;
  client: YjsClient;
  /** the first cell's source, once the cell exists in this editor's document */
  text?: Y.Text;
  /** the last character this editor typed (null: none yet, the cursor is at the start of the cell) */
  cursor: Y.ID | null;
  /** updates sent and not yet received by every other editor of the notebook */
  outstanding: number;
  /** closed loop: earliest next send (performance.now()) */
  nextAt: number;
  timer?: NodeJS.Timeout;
}

/** A measured window: the updates sent while it was open, and every receipt while it was open. */
export class Window {
  t0 = Number.POSITIVE_INFINITY;
  t1 = Number.POSITIVE_INFINITY;
  sent = 0;
  /** updates sent in the window × the other editors of their notebook */
  expected = 0;
  /** receipts of the window's updates, whenever they came */
  received = 0;
  /** the window's updates received by every other editor */
  complete = 0;
  /** every receipt while the window was open (of any update) */
  deliveriesInWindow = 0;
  readonly samples = new Samples();

  /**
   * `pool`: samples shared by several windows (the rounds of one row), fed beside this window's own; `farPool`
   * the same for receipts on another node than the sender's
   */
  constructor(
    readonly pool?: Samples,
    readonly farPool?: Samples,
  ) {}

  open(seconds: number): void {
    this.t0 = performance.now();
    this.t1 = this.t0 + seconds * 1000;
  }

  close(): void {
    this.t1 = Math.min(this.t1, performance.now());
  }

  get seconds(): number {
    return (this.t1 - this.t0) / 1000;
  }
}

interface Sender {
  editor: Editor;
  others: number;
  /** clock of the first typed character: earlier clocks (the cell itself) are not measured */
  base: number;
  times: number[];
  got: number[];
  windows: (Window | null)[];
}

/** One group of servers (1 or 2 nodes) with its notebooks and their editors. */
export class NotebookLoad {
  private readonly senders = new Map<number, Sender>();
  /** the window new sends count in */
  private current: Window | null = null;
  private readonly measured: Window[] = [];
  /** receipts of updates nobody here sent (not the cell, not the typing) */
  unknown = 0;
  /** every update typed × the other editors of its notebook, and their receipts, windows or not */
  private expectedAll = 0;
  private receivedAll = 0;
  private onComplete: ((e: Editor) => void) | undefined;
  private readonly stops: (() => void)[] = [];

  private constructor(
    readonly editors: Editor[],
    readonly notebooks: number,
    /** fixtures, handshakes, first cells, ms */
    readonly setup: { fixturesMs: number; connectMs: number; cellMs: number },
  ) {
    for (const e of editors) {
      const others = editors.filter((o) => o.notebook === e.notebook).length - 1;
      const s: Sender = { editor: e, others, base: -1, times: [], got: [], windows: [] };
      if (this.senders.has(e.client.doc.clientID)) throw new Error("two editors drew the same Yjs clientID");
      this.senders.set(e.client.doc.clientID, s);
      e.client.listen((client, from, to) => this.receive(e, client, from, to));
    }
  }

  /**
   * `notebooks` notebooks of `perNotebook` editors each; editor j of a notebook connects to node j mod nodes.
   * `fixtures`: DoctorPy (users with access tokens, a room per notebook, its notebook through the HTTP API,
   * created through the first node); otherwise random notebook ids. Editor 0 of each notebook then adds the
   * first cell, and every editor waits for it.
   */
  static async open(
    nodes: ServerChild[],
    notebooks: number,
    perNotebook: number,
    fixtures: boolean,
  ): Promise<NotebookLoad> {
    let started = performance.now();
    const first = nodes[0] as ServerChild;
    let ids: string[] = Array.from({ length: notebooks }, () => crypto.randomUUID());
    let tokens: string[] | undefined;
    if (fixtures) {
      const fx = await first.fixtures(notebooks * perNotebook, perNotebook);
      tokens = fx.users.map((u) => u.token);
      ids = await Promise.all(fx.rooms.map((r) => notebookIdOf(first.url, r.id, tokens?.[r.members[0] as number])));
    }
    const fixturesMs = performance.now() - started;
    started = performance.now();
    const editors: Editor[] = [];
    try {
      const all = Array.from({ length: notebooks * perNotebook }, (_, i) => i);
      for (let from = 0; from < all.length; from += 50) {
        const batch = all.slice(from, from + 50).map(async (i) => {
          const notebook = Math.floor(i / perNotebook);
          const node = (i % perNotebook) % nodes.length;
          const url = (nodes[node] as ServerChild).url;
          const client = await YjsClient.connect(url, ids[notebook] as string, tokens?.[i]);
          return { index: i, notebook, node, client, cursor: null, outstanding: 0, nextAt: 0 } satisfies Editor;
        });
        editors.push(...(await Promise.all(batch)));
      }
      const connectMs = performance.now() - started;
      started = performance.now();
      for (const e of editors)
        if (e.index % perNotebook === 0) e.client.edit((tr) => insertCell(tr.doc, 0, { type: "code" }));
      const ready = await waitUntil(() => editors.every((e) => textOf(e) !== undefined), 30_000);
      if (!ready) throw new Error("the first cell did not reach every editor within 30 s");
      return new NotebookLoad(editors, notebooks, { fixturesMs, connectMs, cellMs: performance.now() - started });
    } catch (err) {
      for (const e of editors) e.client.close();
      throw err;
    }
  }

  /** Types one character at the editor's cursor, now (see {@link typeAfter}). */
  private type(e: Editor): void {
    const doc = e.client.doc;
    const s = this.senders.get(doc.clientID) as Sender;
    const clock = Y.getState(doc.store, doc.clientID);
    if (s.base < 0) s.base = clock;
    if (clock - s.base !== s.times.length) throw new Error("an editor's clock moved outside its typing");
    const w = this.current && performance.now() < this.current.t1 ? this.current : null;
    s.times.push(performance.now());
    s.got.push(0);
    s.windows.push(w);
    if (w) {
      w.sent++;
      w.expected += s.others;
    }
    e.outstanding++;
    this.expectedAll += s.others;
    const text = e.text as Y.Text;
    e.client.edit((tr) => {
      e.cursor = typeAfter(tr, text, e.cursor, String.fromCharCode(97 + (clock % 26)));
    });
  }

  private receive(receiver: Editor, client: number, from: number, to: number): void {
    const now = performance.now();
    for (const w of this.measured) if (now >= w.t0 && now < w.t1) w.deliveriesInWindow += to - from;
    const s = this.senders.get(client);
    if (!s) {
      this.unknown += to - from;
      return;
    }
    for (let clock = from; clock < to; clock++) {
      const k = clock - s.base;
      if (s.base < 0 || k < 0) continue;
      if (k >= s.times.length) {
        this.unknown++;
        continue;
      }
      this.receivedAll++;
      const got = (s.got[k] as number) + 1;
      s.got[k] = got;
      const w = s.windows[k];
      if (w) {
        w.received++;
        const latency = now - (s.times[k] as number);
        w.samples.add(latency);
        w.pool?.add(latency);
        if (receiver.node !== s.editor.node) w.farPool?.add(latency);
        if (got === s.others) w.complete++;
      }
      if (got === s.others) {
        s.editor.outstanding--;
        this.onComplete?.(s.editor);
      }
    }
  }

  /** Open loop: every editor types `perSecond` characters a second, each at a random phase. */
  paced(perSecond: number): void {
    const interval = 1000 / perSecond;
    const timers: NodeJS.Timeout[] = [];
    for (const e of this.editors) {
      timers.push(
        setTimeout(() => {
          this.type(e);
          timers.push(setInterval(() => this.type(e), interval));
        }, Math.random() * interval),
      );
    }
    this.stops.push(() => {
      for (const t of timers) clearTimeout(t);
    });
  }

  /**
   * Closed loop: every editor keeps `window` updates on their way (sent, not yet received by every other editor
   * of its notebook) and types the next as soon as one lands, at most `maxPerSecond` a second.
   */
  closedLoop(window: number, maxPerSecond: number): void {
    const spacing = 1000 / maxPerSecond;
    let running = true;
    const pump = (e: Editor) => {
      if (!running || e.timer) return;
      let now = performance.now();
      while (e.outstanding < window && e.nextAt <= now) {
        this.type(e);
        e.nextAt = Math.max(e.nextAt, now) + spacing;
        now = performance.now();
      }
      if (e.outstanding < window)
        e.timer = setTimeout(
          () => {
            e.timer = undefined;
            pump(e);
          },
          Math.max(0, e.nextAt - now),
        );
    };
    this.onComplete = pump;
    for (const e of this.editors) pump(e);
    this.stops.push(() => {
      running = false;
      this.onComplete = undefined;
      for (const e of this.editors) {
        clearTimeout(e.timer);
        e.timer = undefined;
      }
    });
  }

  /** Stops every editor's typing. */
  stop(): void {
    for (const s of this.stops.splice(0)) s();
  }

  /** A window that new sends count in, open for `seconds` from now. */
  measure(seconds: number, pool?: Samples, farPool?: Samples): Window {
    const w = new Window(pool, farPool);
    w.open(seconds);
    this.current = w;
    this.measured.push(w);
    return w;
  }

  /** Waits until every update typed so far reached every other editor, or `maxMs`; true when nothing is missing. */
  drain(maxMs: number): Promise<boolean> {
    return waitUntil(() => this.receivedAll >= this.expectedAll, maxMs);
  }

  /** Notebooks whose editors do not hold the same text (call once typing stopped and the windows drained). */
  diverged(): number {
    const texts = new Map<number, string>();
    const bad = new Set<number>();
    for (const e of this.editors) {
      const text = e.text?.toString() ?? "";
      const first = texts.get(e.notebook);
      if (first === undefined) texts.set(e.notebook, text);
      else if (first !== text) bad.add(e.notebook);
    }
    return bad.size;
  }

  /** Editors whose socket closed (a server refusing the load closes with a code). */
  closedCodes(): number[] {
    return this.editors.flatMap((e) => (e.client.closedWith === undefined ? [] : [e.client.closedWith]));
  }

  close(): void {
    this.stop();
    for (const e of this.editors) e.client.close();
  }
}

/**
 * Inserts `ch` right after the character `after` (or at the start of `text`), as Y.Text's own insert does once
 * it has found the position, and returns the new character's id: each editor types forward on a line of its
 * own, the way people type. Y.Text's public API inserts by index, and finding an index costs a walk over the
 * text after every remote change (Yjs drops the text's search markers then): hundreds of editors in this one
 * process could not afford it. Typing at a fixed index instead (0, or the end) would be cheap but makes every
 * character concurrent with its neighbours' and the server's compaction quadratic in the text's length.
 */
function typeAfter(tr: Y.Transaction, text: Y.Text, after: Y.ID | null, ch: string): Y.ID {
  const doc = tr.doc;
  const left = after ? Y.getItemCleanEnd(tr, doc.store, after) : null;
  const right = left ? left.right : text._start;
  const id = Y.createID(doc.clientID, Y.getState(doc.store, doc.clientID));
  new Y.Item(id, left, left?.lastId ?? null, right, right?.id ?? null, text, null, new Y.ContentString(ch)).integrate(
    tr,
    0,
  );
  return id;
}

function textOf(e: Editor): Y.Text | undefined {
  if (e.text) return e.text;
  const source = cellsOf(e.client.doc).get(0)?.get("source");
  if (source instanceof Y.Text) e.text = source;
  return e.text;
}

async function notebookIdOf(baseUrl: string, roomId: string, token: string | undefined): Promise<string> {
  const res = await fetch(`${baseUrl}/api/v1/rooms/${roomId}/notebook`, {
    headers: { authorization: `Bearer ${token}` },
  });
  if (res.status !== 200) throw new Error(`GET /api/v1/rooms/${roomId}/notebook: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

export async function waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
  const until = performance.now() + ms;
  while (!cond()) {
    if (performance.now() >= until) return false;
    await sleep(10);
  }
  return true;
}
