import type { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { performance } from "node:perf_hooks";

/**
 * Write coalescing for WebSocket connections: what the server writes to one connection during one turn of the
 * event loop leaves in one system call, at the end of the turn; and a connection written to less than
 * `holdMs` ago waits until then, so that a fast stream of small messages leaves in a few larger writes.
 *
 * Each write to a TCP socket is a system call, and on loopback or a busy host that call (and the kernel's work
 * behind it) costs more than building the frame. A room of 500 that receives a burst of k messages costs
 * 500 × k calls; coalesced, 500, whatever k is. A connection that receives one message now and then is
 * written at the end of the turn, as before; one that receives hundreds a second (a big room's chat, a busy
 * notebook) gets them in writes at most `holdMs` apart, each message waiting at most that long.
 *
 * A socket is corked (node:net buffers its writes) on its first write and uncorked in a `setImmediate`
 * callback, which runs once the event loop has handled the I/O that was ready, or, when held, by one timer
 * shared by every held socket. Node then writes the buffered frames with one `writev`. Frames keep their
 * order; nothing else about the connection changes.
 */

/** When the socket was last written (performance.now()), to decide whether its next write waits. */
const WRITTEN_AT = Symbol("writtenAt");
type Tracked = { [WRITTEN_AT]?: number };

/** The part of an Engine.IO socket this module touches. */
interface EngineSocketLike extends Tracked {
  flush(): void;
  writeBuffer: unknown[];
  readyState?: string;
  upgrading?: boolean;
  transport: { name: string; socket?: unknown; writable?: boolean; perMessageDeflate?: unknown };
}
type RawSocket = Socket & Tracked;

let holdMs = 0;
/** The hold applies only while the event loop was busier than this share of the last sample (0: always). */
let busyShare = 0.5;
let busy = false;
let sampler: NodeJS.Timeout | undefined;
const SAMPLE_MS = 100;

/**
 * Sets how long a connection written to recently waits before its next write (0: never, only within a turn),
 * and how busy the event loop must be for that to apply: an idle server writes at the end of each turn, and
 * only one that spends more than `whenBusierThan` of its time working trades a few milliseconds for fewer
 * system calls.
 */
export function setWriteHold(ms: number, whenBusierThan = 0.5): void {
  holdMs = Math.max(0, ms);
  busyShare = Math.min(1, Math.max(0, whenBusierThan));
  busy = busyShare === 0;
  if (holdMs === 0 || busyShare === 0) {
    clearInterval(sampler);
    sampler = undefined;
    return;
  }
  if (sampler) return;
  let last = performance.eventLoopUtilization();
  sampler = setInterval(() => {
    const now = performance.eventLoopUtilization();
    busy = performance.eventLoopUtilization(now, last).utilization > busyShare;
    last = now;
  }, SAMPLE_MS);
  sampler.unref();
}

/**
 * Sockets (raw) and Engine.IO sockets to write at the end of this turn, and those held until the timer.
 *
 * Each round of writes takes its sets and leaves new empty ones in their place, rather than clearing them:
 * a set that lives as long as the process sits in V8's old generation, and every table it grows into while
 * hundreds of sockets are added (and the one `clear()` leaves) is allocated there too. At a room of 500 that
 * was ~7 KB of old-generation garbage per broadcast, 3 MB/s at 400 broadcasts/s, and a major collection,
 * with its 10–15 ms marking steps, every few seconds. A new set is young and dies young.
 */
interface Round {
  raw: Set<RawSocket>;
  engine: Set<EngineSocketLike>;
}
const newRound = (): Round => ({ raw: new Set(), engine: new Set() });
const rounds = { turn: newRound(), held: newRound() };

/** Takes the sockets of one round out of the module's state, leaving an empty round in its place. */
function take(which: keyof typeof rounds): Round {
  const round = rounds[which];
  rounds[which] = newRound();
  return round;
}

let turnScheduled = false;
let holdTimer: NodeJS.Timeout | undefined;

function held(socket: Tracked, now: number): boolean {
  const at = socket[WRITTEN_AT];
  return busy && holdMs > 0 && at !== undefined && now - at < holdMs;
}

function scheduleTurn(): void {
  if (turnScheduled) return;
  turnScheduled = true;
  setImmediate(endOfTurn);
}

function scheduleHold(): void {
  if (holdTimer) return;
  holdTimer = setTimeout(endOfHold, holdMs);
}

function endOfTurn(): void {
  turnScheduled = false;
  write(take("turn"));
}

function endOfHold(): void {
  holdTimer = undefined;
  write(take("held"));
}

/**
 * Runs the engine sockets' flushes into corked sockets, then uncorks every socket once. The round belongs to
 * this call (taken out of the module's state), and its raw set collects the sockets to uncork.
 */
function write({ raw: toUncork, engine: engines }: Round): void {
  const now = performance.now();
  if (engines.size > 0) {
    for (const socket of engines) {
      socket[WRITTEN_AT] = now;
      const raw = rawSocketOf(socket.transport.socket);
      if (raw && !raw.destroyed && !toUncork.has(raw)) {
        raw.cork();
        toUncork.add(raw);
      }
      engineFlush?.call(socket);
    }
  }
  for (const raw of toUncork) {
    raw[WRITTEN_AT] = now;
    raw.uncork();
  }
}

/** Writes everything waiting now (before connections are dropped without a drain, as at shutdown). */
export function flushPendingWrites(): void {
  write(take("held"));
  write(take("turn"));
}

/** Holds this socket's writes until the end of the current turn of the event loop, or the hold (see above). */
export function corkUntilTurnEnds(socket: RawSocket | undefined): void {
  if (!socket || socket.destroyed || rounds.turn.raw.has(socket) || rounds.held.raw.has(socket)) return;
  socket.cork();
  enqueue(socket, rounds.turn.raw, rounds.held.raw);
}

/** Queues a socket for the end of the turn, or for the hold's timer when it was written to too recently. */
function enqueue<T extends Tracked>(socket: T, turn: Set<T>, hold: Set<T>): void {
  if (held(socket, performance.now())) {
    hold.add(socket);
    scheduleHold();
  } else {
    turn.add(socket);
    scheduleTurn();
  }
}

/** ws keeps the TCP socket it frames onto in `_socket` (not typed, stable across ws 8). */
export function rawSocketOf(ws: unknown): RawSocket | undefined {
  const raw = (ws as { _socket?: unknown } | undefined)?._socket;
  return raw && typeof (raw as Socket).cork === "function" ? (raw as RawSocket) : undefined;
}

/** Engine.IO's own `Socket.prototype.flush`, kept once it is replaced (see below). */
let engineFlush: ((this: EngineSocketLike) => void) | undefined;

/**
 * Engine.IO writes a socket's queued packets as soon as one is queued, then holds the rest until the kernel
 * took the first: a burst to one client costs one call per packet however it is corked. Here a WebSocket
 * client's flush waits for the end of the turn (or the hold), and the whole burst goes out in one corked write.
 * Polling clients are left alone (their packets already leave in one HTTP response).
 *
 * The replacement goes on Engine.IO's socket prototype, once per process, when the first client connects:
 * nothing is added to each connection (memory per socket is a target of its own).
 */
export function coalesceEngineWrites(engine: EventEmitter): void {
  engine.once("connection", (socket: EngineSocketLike) => {
    if (engineFlush) return;
    const proto = Object.getPrototypeOf(socket) as { flush(this: EngineSocketLike): void };
    const flushNow = proto.flush;
    engineFlush = flushNow;
    proto.flush = function (this: EngineSocketLike) {
      if (this.transport?.name !== "websocket" || this.writeBuffer.length === 0) {
        flushNow.call(this);
        return;
      }
      if (!rounds.turn.engine.has(this) && !rounds.held.engine.has(this))
        enqueue(this, rounds.turn.engine, rounds.held.engine);
    };
  });
}

/** ws's frame writer, as Engine.IO's WebSocket transport uses it for pre-encoded frames. */
interface SenderLike {
  sendFrame(frame: Buffer[], cb?: () => void): void;
}

/** The part of a Socket.IO client (one per connection) this module touches. */
interface SocketIoClientLike {
  conn: EngineSocketLike;
  writeToEngine(encodedPackets: unknown, opts: { volatile?: boolean; wsPreEncodedFrame?: Buffer[] }): void;
}

/**
 * A broadcast to a room encodes its packet and its WebSocket frame once (socket.io-adapter), then hands the
 * frame to each member's Engine.IO socket, which makes a packet object, queues it, emits three events, flushes,
 * and passes the frame to ws with two callbacks: at a room of 500 that bookkeeping cost as much as the frames.
 * Here a member whose connection is an open WebSocket with nothing queued ahead gets the frame written straight
 * onto its TCP socket (corked until the end of the turn, like everything else, and held the same way). Anything
 * else takes Engine.IO's path: a volatile packet, a connection upgrading or on long-polling, one with packets
 * queued or a send in flight (those go first, so order is kept), compression.
 *
 * The replacement goes on Socket.IO's client prototype, once per process, when the first socket connects.
 */
export function writeBroadcastFramesDirectly(io: EventEmitter): void {
  io.once("connection", (socket: { client: SocketIoClientLike }) => {
    if (broadcastsPatched) return;
    broadcastsPatched = true;
    const proto = Object.getPrototypeOf(socket.client) as SocketIoClientLike;
    const writeToEngine = proto.writeToEngine;
    proto.writeToEngine = function (this: SocketIoClientLike, encodedPackets, opts) {
      const frame = opts?.wsPreEncodedFrame;
      const conn = this.conn;
      const transport = conn?.transport;
      if (
        frame &&
        !opts.volatile &&
        conn.readyState === "open" &&
        !conn.upgrading &&
        transport.name === "websocket" &&
        transport.writable === true &&
        !transport.perMessageDeflate &&
        conn.writeBuffer.length === 0
      ) {
        const sender = (transport.socket as { _sender?: SenderLike } | undefined)?._sender;
        const raw = rawSocketOf(transport.socket);
        if (sender && typeof sender.sendFrame === "function" && raw && !raw.destroyed) {
          corkUntilTurnEnds(raw);
          sender.sendFrame(frame);
          return;
        }
      }
      writeToEngine.call(this, encodedPackets, opts);
    };
  });
}

/** Whether Socket.IO's `Client.prototype.writeToEngine` was replaced already (once per process). */
let broadcastsPatched = false;
