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
