import { io, type Socket } from "socket.io-client";
import type {
  Ack,
  ClientToServerEvents,
  PresenceUser,
  RoomJoinResult,
  ServerToClientEvents,
} from "../../shared/realtime.ts";
import { SOCKET_PATH } from "../../shared/realtime.ts";
import type { ChatMessage } from "../../shared/schemas/rooms.ts";
import type { Answer, TutorDelta } from "../../shared/schemas/tutor.ts";

export type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface ConnectOptions {
  token?: string;
  cookie?: string;
  origin?: string;
  reconnection?: boolean;
}

/** A real socket.io-client over WebSocket, connected (or rejected with the connect_error). */
export function connect(url: string, opts: ConnectOptions = {}): Promise<ClientSocket> {
  const headers: Record<string, string> = {};
  if (opts.cookie) headers.cookie = opts.cookie;
  if (opts.origin) headers.origin = opts.origin;
  const socket: ClientSocket = io(url, {
    path: SOCKET_PATH,
    transports: ["websocket"],
    auth: opts.token ? { token: opts.token } : {},
    extraHeaders: headers,
    reconnection: opts.reconnection ?? false,
    forceNew: true,
  });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => {
      socket.close();
      reject(err);
    });
  });
}

/** Sends a request-like event and resolves with its ack. */
export function request<T>(socket: ClientSocket, event: keyof ClientToServerEvents, payload: unknown): Promise<Ack<T>> {
  return (socket.timeout(5000) as unknown as { emitWithAck(e: string, p: unknown): Promise<Ack<T>> }).emitWithAck(
    event,
    payload,
  );
}

/** How long a gap may stay open before the client asks for the missing messages. */
export const GAP_REPAIR_MS = 500;

/**
 * What a well-behaved client keeps of a room's chat (the rule of docs/PROTOCOL.md): messages in `seq` order,
 * each once. One that arrives early (a later `seq` through a faster node) waits until the ones before it came;
 * `lastSeq` is the last gap-free one, the cursor to rejoin with.
 */
export class ChatLog {
  readonly messages: ChatMessage[] = [];
  private readonly early = new Map<number, ChatMessage>();

  get lastSeq(): number {
    return this.messages.at(-1)?.seq ?? this.base;
  }
  /** messages waiting for an earlier one */
  get waiting(): number {
    return this.early.size;
  }

  /** `base`: the seq this log starts after (a client that joins without history starts at the room's current seq) */
  constructor(private base = 0) {}

  /** Starts the log after `seq` (what a first join without history does). */
  startAfter(seq: number): void {
    if (this.messages.length > 0) return;
    this.base = Math.max(this.base, seq);
    for (const s of this.early.keys()) if (s <= this.base) this.early.delete(s);
    this.drain();
  }

  add(m: ChatMessage): void {
    if (m.seq <= this.lastSeq || this.early.has(m.seq)) return;
    this.early.set(m.seq, m);
    this.drain();
    this.watchGap();
  }

  private repair: { socket: ClientSocket; roomId: string } | undefined;
  private gapTimer: ReturnType<typeof setTimeout> | undefined;

  /** Repairs gaps that stay open (a message whose node died before broadcasting it) through `socket`. */
  repairVia(socket: ClientSocket, roomId: string): this {
    this.repair = { socket, roomId };
    return this;
  }

  /** A gap still open after `GAP_REPAIR_MS`: ask `chat:sync` for what follows the last gap-free message. */
  private watchGap(): void {
    if (this.early.size === 0 || this.gapTimer || !this.repair) return;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = undefined;
      const r = this.repair;
      if (this.early.size === 0 || !r?.socket.connected) return;
      request<{ messages: ChatMessage[] }>(r.socket, "chat:sync", { roomId: r.roomId, afterSeq: this.lastSeq }).then(
        (reply) => {
          if (reply.ok) for (const m of reply.data.messages) this.add(m);
          this.watchGap();
        },
        () => this.watchGap(),
      );
    }, GAP_REPAIR_MS);
    this.gapTimer.unref?.();
  }

  private drain(): void {
    for (let next = this.early.get(this.lastSeq + 1); next; next = this.early.get(this.lastSeq + 1)) {
      this.early.delete(next.seq);
      this.messages.push(next);
    }
  }
  bodies(): string[] {
    return this.messages.map((m) => m.body);
  }
  /** Records every chat:message of `roomId` arriving on `socket` (and repairs gaps through it). */
  follow(socket: ClientSocket, roomId: string): this {
    this.repairVia(socket, roomId);
    socket.on("chat:message", (m) => {
      if (m.roomId === roomId) this.add(m);
    });
    return this;
  }
}

/**
 * Joins `roomId` with `log` following it, as a client does: fresh (the cursor starts at the room's current
 * seq) or, with `resume`, after `log.lastSeq`, merging what the ack says was missed.
 */
export async function joinWithLog(
  socket: ClientSocket,
  roomId: string,
  log: ChatLog,
  resume = false,
): Promise<Ack<RoomJoinResult>> {
  log.follow(socket, roomId);
  const reply = await request<RoomJoinResult>(
    socket,
    "room:join",
    resume ? { roomId, lastSeq: log.lastSeq } : { roomId },
  );
  if (reply.ok) {
    if (resume) for (const m of reply.data.missed) log.add(m);
    else log.startAfter(reply.data.lastSeq);
  }
  return reply;
}

/**
 * What a well-behaved client keeps of a room's presence (the rule of docs/PROTOCOL.md): the list from the
 * `room:join` ack, with every presence event applied on top, those that arrived before the ack included.
 * Create it before joining; `ids()` are the user ids present now, sorted.
 */
export class PresenceView {
  readonly users = new Map<string, PresenceUser>();
  /** set once the join ack's list is in: events before it wait */
  private ready = false;
  private readonly early: (() => void)[] = [];
  /** called after every change, with the sorted ids */
  onChange?: (ids: string[]) => void;

  constructor(
    socket: ClientSocket,
    private readonly roomId: string,
  ) {
    const on = (roomId: string, apply: () => void) => {
      if (roomId !== this.roomId) return;
      if (!this.ready) this.early.push(apply);
      else this.apply(apply);
    };
    socket.on("presence:joined", ({ roomId, user }) => on(roomId, () => this.users.set(user.userId, user)));
    socket.on("presence:left", ({ roomId, userId }) => on(roomId, () => this.users.delete(userId)));
    socket.on("presence:update", ({ roomId, users }) => on(roomId, () => this.replace(users)));
    socket.on("hand:update", ({ roomId, userId, raised }) =>
      on(roomId, () => {
        const u = this.users.get(userId);
        if (u) this.users.set(userId, { ...u, handRaised: raised });
      }),
    );
    socket.on("member:updated", ({ roomId, userId, role }) =>
      on(roomId, () => {
        const u = this.users.get(userId);
        if (u) this.users.set(userId, { ...u, role });
      }),
    );
  }

  /** Before a rejoin: events wait again for the next ack's list. */
  rejoining(): void {
    this.ready = false;
  }

  /** The list from a `room:join` ack. */
  joined(list: PresenceUser[]): void {
    this.replace(list);
    this.ready = true;
    for (const apply of this.early.splice(0)) apply();
    this.onChange?.(this.ids());
  }

  ids(): string[] {
    return [...this.users.keys()].sort();
  }

  private replace(list: PresenceUser[]): void {
    this.users.clear();
    for (const u of list) this.users.set(u.userId, u);
  }

  private apply(change: () => void): void {
    change();
    this.onChange?.(this.ids());
  }
}

/**
 * What a well-behaved client keeps of a room's tutor answers (the rule of docs/PROTOCOL.md): the answers of the
 * `room:join` ack, then every tutor event on top. A piece is appended when its `seq` is the next one, ignored
 * when already seen, held when it comes early; `tutor:done` and `tutor:reviewed` replace the answer's state.
 * Events that come before the ack wait for it. Create it before joining.
 *
 * `streamed(id)` is the text rebuilt from the ack and the pieces alone, never from `tutor:done`: what tests
 * compare with the stored text.
 */
export class AnswerView {
  readonly answers = new Map<string, Answer>();
  /** pieces received twice (ignored) */
  duplicates = 0;
  /** every event received, in order, as `event:answerId[:seq]` */
  readonly trace: string[] = [];
  private ready = false;
  private readonly waiting: (() => void)[] = [];
  private readonly built = new Map<string, { text: string; deltas: number }>();
  private readonly early = new Map<string, Map<number, TutorDelta>>();

  constructor(socket?: ClientSocket) {
    if (socket) this.follow(socket);
  }

  /** Listens to `socket` (a client that reconnects keeps its view and follows the new connection). */
  follow(socket: ClientSocket): this {
    const on = (apply: () => void) => {
      if (this.ready) apply();
      else this.waiting.push(apply);
    };
    for (const event of ["tutor:queued", "tutor:started", "tutor:done", "tutor:reviewed"] as const) {
      socket.on(event, (a) => {
        this.trace.push(`${event}:${a.id}`);
        on(() => this.state(a));
      });
    }
    socket.on("tutor:delta", (d) => {
      this.trace.push(`tutor:delta:${d.answerId}:${d.seq}`);
      on(() => this.piece(d));
    });
    return this;
  }

  /** The answers of a `room:join` ack: each one's text so far is where its pieces continue. */
  joined(list: Answer[]): void {
    for (const a of list) {
      this.state(a);
      this.extend(a.id, a.text, a.deltas);
    }
    this.ready = true;
    for (const apply of this.waiting.splice(0)) apply();
  }

  /** Before a rejoin: events wait again for the next ack. */
  rejoining(): void {
    this.ready = false;
  }

  /** The answer's latest state (from events), with the text streamed so far while it streams. */
  get(id: string): Answer | undefined {
    const a = this.answers.get(id);
    const b = this.built.get(id);
    if (!a) return undefined;
    return a.status === "streaming" && b ? { ...a, text: b.text, deltas: b.deltas } : a;
  }

  /** The text rebuilt from the pieces (and the join ack), and how many pieces it holds. */
  streamed(id: string): { text: string; deltas: number } {
    return this.built.get(id) ?? { text: "", deltas: 0 };
  }

  private state(a: Answer): void {
    this.answers.set(a.id, a);
  }

  /** Takes a text so far from an ack when it holds more pieces than the client has. */
  private extend(id: string, text: string, deltas: number): void {
    const b = this.built.get(id);
    if (!b || deltas > b.deltas) this.built.set(id, { text, deltas });
    this.drain(id);
  }

  private piece(d: TutorDelta): void {
    const b = this.built.get(d.answerId) ?? { text: "", deltas: 0 };
    if (d.seq <= b.deltas) {
      this.duplicates += 1;
      return;
    }
    if (d.seq > b.deltas + 1) {
      const held = this.early.get(d.answerId) ?? new Map<number, TutorDelta>();
      held.set(d.seq, d);
      this.early.set(d.answerId, held);
      return;
    }
    this.built.set(d.answerId, { text: b.text + d.text, deltas: d.seq });
    this.drain(d.answerId);
  }

  private drain(id: string): void {
    const held = this.early.get(id);
    const b = this.built.get(id);
    if (!held || !b) return;
    for (const seq of [...held.keys()]) if (seq <= b.deltas) held.delete(seq);
    const next = held.get(b.deltas + 1);
    if (next) {
      held.delete(next.seq);
      this.piece(next);
    }
  }
}

/** The data of an ok ack; a refused one throws with its code (for calls a test expects to succeed). */
export function ackData<T>(reply: Ack<T>): T {
  if (!reply.ok) throw new Error(`${reply.error.code}: ${reply.error.message}`);
  return reply.data;
}

/** The answer once it has ended (neither queued nor streaming), else undefined: for `waitFor`. */
export function finishedAnswer(view: AnswerView, id: string): Answer | undefined {
  const a = view.get(id);
  return a && a.status !== "queued" && a.status !== "streaming" ? a : undefined;
}
