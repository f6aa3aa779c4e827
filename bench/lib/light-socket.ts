/**
 * A load-generator socket that speaks just enough of Engine.IO 4 / Socket.IO 5 over WebSocket: connect with
 * `auth`, answer pings, send events with acks, and hand over the stamp of each `chat:message` without parsing
 * the packet. socket.io-client decodes every packet into objects and emits events, which at ~100k
 * deliveries/s saturates the load generator's core before the server's (the fan-out rows of bench:rooms were
 * limited by the client side). The server does the same work for either client.
 *
 * The WebSocket itself is a few lines over `node:net` rather than the `ws` client: at 200k+ receipts/s the
 * `ws` receiver (a stream per connection, a Buffer per read and per frame) cost the load generator about
 * 3 µs per receipt and a sixth of its time in garbage collection, and the receipts wait for both: a pause of
 * the load generator shows as latency of the server it measures. Here every connection reads into one
 * buffer shared by all of them (`onread`: nothing is allocated per read), frames are parsed in place, and a
 * chat stamp is read from the bytes into two numbers. Only a frame split across two reads is copied.
 */
import { createHash, randomBytes } from "node:crypto";
import { connect as netConnect, type Socket } from "node:net";
import { SOCKET_PATH } from "../../shared/realtime.ts";

export interface AckReply {
  ok: boolean;
  error?: { code: string; message: string };
}

const CHAT = Buffer.from('42["chat:message",');
const BODY = Buffer.from('"body":"');
const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;

/**
 * The buffer every connection reads into (one thread, and a read is handled before the next one starts).
 * Large enough for what loopback hands over in one read when hundreds of frames are queued.
 */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

export class LightSocket {
  private nextId = 0;
  private readonly acks = new Map<number, (reply: AckReply) => void>();
  private chat: ((sender: number, t: number) => void) | undefined;
  /** `onEvent` handlers: the raw packet of each event whose packet starts with `prefix` */
  private readonly raw: { prefix: Buffer; fn: (packet: Buffer) => void }[] = [];
  private open = true;
  /** text packets before the namespace is connected (the handshake), then undefined */
  private onHandshakePacket: ((text: string) => void) | undefined;
  /** bytes of a frame that did not fit in one read */
  private partial: Buffer | undefined;
  /** payloads of a fragmented message so far */
  private fragments: Buffer[] | undefined;
  /** the HTTP upgrade response until its blank line */
  private upgradeResponse: Buffer | undefined = Buffer.alloc(0);
  private readonly socket: Socket;

  private constructor(url: URL, path: string, onUpgradeFailed: (err: Error) => void) {
    const key = randomBytes(16).toString("base64");
    const accept = createHash("sha1").update(`${key}${WS_GUID}`).digest("base64");
    this.socket = netConnect({
      host: url.hostname,
      port: Number(url.port),
      noDelay: true,
      onread: {
        buffer: READ_BUFFER,
        callback: (n: number, buf: Uint8Array) => {
          this.read(buf as Buffer, n, accept, onUpgradeFailed);
          return true;
        },
      },
    });
    this.socket.on("connect", () => {
      this.socket.write(
        `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    this.socket.on("error", (err) => {
      if (this.upgradeResponse) onUpgradeFailed(err);
    });
    this.socket.on("close", () => {
      this.open = false;
      if (this.upgradeResponse) onUpgradeFailed(new Error("closed before the WebSocket upgrade"));
      for (const resolve of this.acks.values()) resolve({ ok: false, error: { code: "closed", message: "closed" } });
      this.acks.clear();
    });
  }

  /** Opens the WebSocket, sends CONNECT with `{ token }`, resolves on the namespace's CONNECT reply. */
  static connect(url: string, token: string | undefined, timeoutMs = 30_000): Promise<LightSocket> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(() => fail(new Error("connect timeout")), timeoutMs);
      const socket = new LightSocket(new URL(url), `${SOCKET_PATH}/?EIO=4&transport=websocket`, fail);
      socket.onHandshakePacket = (text) => {
        if (text.startsWith("0")) {
          socket.send(`40${JSON.stringify(token ? { token } : {})}`);
        } else if (text.startsWith("40")) {
          settled = true;
          clearTimeout(timer);
          socket.onHandshakePacket = undefined;
          resolve(socket);
        } else if (text.startsWith("44")) {
          const err = JSON.parse(text.slice(2)) as { message: string; data?: { code?: string } };
          fail(new Error(`connect_error: ${err.message} (${err.data?.code ?? "no code"})`));
        }
      };
    });
  }

  get connected(): boolean {
    return this.open;
  }

  /**
   * Called with the stamp of every `chat:message` whose body is `<sender>|<t>` (bench/lib/realtime.ts
   * `stampBody`), read from the bytes; with NaN, NaN for any other body.
   */
  onChatStamp(fn: (sender: number, t: number) => void): void {
    this.chat = fn;
  }

  /**
   * Called with the raw packet (`42["<event>",...]`, undecoded) of every `event` that is not a `chat:message`;
   * the caller reads what it needs from the bytes (bench/tutor.ts reads the stamp of each `tutor:delta`). The
   * packet is a view of the shared read buffer: valid only during the call.
   */
  onEvent(event: string, fn: (packet: Buffer) => void): void {
    this.raw.push({ prefix: Buffer.from(`42[${JSON.stringify(event)},`), fn });
  }

  /** Sends an event and resolves with its ack, or with `{ ok: false, error: timeout }` after `timeoutMs`. */
  request(event: string, payload: unknown, timeoutMs = 30_000): Promise<AckReply> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      if (!this.open) {
        resolve({ ok: false, error: { code: "closed", message: "closed" } });
        return;
      }
      const timer = setTimeout(() => {
        this.acks.delete(id);
        resolve({ ok: false, error: { code: "ack timeout", message: "ack timeout" } });
      }, timeoutMs);
      this.acks.set(id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.send(`42${id}${JSON.stringify([event, payload])}`);
    });
  }

  close(): void {
    this.chat = undefined;
    this.raw.length = 0;
    if (!this.open) return;
    this.open = false;
    const code = Buffer.alloc(2);
    code.writeUInt16BE(1000);
    this.frame(OP_CLOSE, code);
    this.socket.end();
  }

  /** Drops the connection without a closing handshake. */
  destroy(): void {
    this.open = false;
    this.socket.destroy();
  }

  private send(text: string): void {
    this.frame(OP_TEXT, Buffer.from(text));
  }

  /** Writes one final frame, masked (RFC 6455: every frame from a client is). */
  private frame(opcode: number, payload: Buffer): void {
    if (this.socket.destroyed) return;
    const len = payload.length;
    const head = len < 126 ? 2 : len < 65_536 ? 4 : 10;
    const out = Buffer.allocUnsafe(head + 4 + len);
    out[0] = 0x80 | opcode;
    if (len < 126) out[1] = 0x80 | len;
    else if (len < 65_536) {
      out[1] = 0x80 | 126;
      out.writeUInt16BE(len, 2);
    } else {
      out[1] = 0x80 | 127;
      out.writeBigUInt64BE(BigInt(len), 2);
    }
    const mask = randomBytes(4);
    mask.copy(out, head);
    for (let k = 0; k < len; k++) out[head + 4 + k] = (payload[k] as number) ^ (mask[k & 3] as number);
    this.socket.write(out);
  }

  /** One read: the upgrade response first, then frames (a frame cut by the end of the read waits for the next). */
  private read(buf: Buffer, n: number, accept: string, onUpgradeFailed: (err: Error) => void): void {
    let data = buf;
    let start = 0;
    let end = n;
    if (this.upgradeResponse) {
      const head = Buffer.concat([this.upgradeResponse, buf.subarray(0, n)]);
      const blank = head.indexOf("\r\n\r\n");
      if (blank < 0) {
        this.upgradeResponse = head;
        return;
      }
      this.upgradeResponse = undefined;
      const text = head.toString("latin1", 0, blank);
      if (
        !/^HTTP\/1\.1 101 /.test(text) ||
        !text.toLowerCase().includes(`sec-websocket-accept: ${accept.toLowerCase()}`)
      ) {
        onUpgradeFailed(new Error(`WebSocket upgrade refused: ${text.split("\r\n")[0]}`));
        return;
      }
      data = head;
      start = blank + 4;
      end = head.length;
    }
    if (this.partial) {
      data = Buffer.concat([this.partial, data.subarray(start, end)]);
      this.partial = undefined;
      start = 0;
      end = data.length;
    }
    while (end - start >= 2) {
      const b0 = data[start] as number;
      const b1 = data[start + 1] as number;
      let len = b1 & 0x7f;
      let head = 2;
      if (len === 126) {
        if (end - start < 4) break;
        len = data.readUInt16BE(start + 2);
        head = 4;
      } else if (len === 127) {
        if (end - start < 10) break;
        len = data.readUInt32BE(start + 2) * 2 ** 32 + data.readUInt32BE(start + 6);
        head = 10;
      }
      if (b1 & 0x80) {
        // A server never masks its frames (RFC 6455 5.1).
        this.socket.destroy(new Error("masked frame from the server"));
        return;
      }
      if (end - start < head + len) break;
      this.onFrame(b0, data, start + head, start + head + len);
      start += head + len;
    }
    if (start < end) this.partial = Buffer.from(data.subarray(start, end));
  }

  private onFrame(b0: number, data: Buffer, from: number, to: number): void {
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    if (opcode === OP_TEXT || opcode === OP_CONTINUATION) {
      if (fin && !this.fragments) {
        this.packet(data, from, to);
        return;
      }
      this.fragments ??= [];
      this.fragments.push(Buffer.from(data.subarray(from, to)));
      if (fin) {
        const whole = Buffer.concat(this.fragments);
        this.fragments = undefined;
        this.packet(whole, 0, whole.length);
      }
    } else if (opcode === OP_PING) {
      this.frame(0xa, Buffer.from(data.subarray(from, to)));
    } else if (opcode === OP_CLOSE) {
      this.open = false;
      this.frame(OP_CLOSE, Buffer.from(data.subarray(from, Math.min(to, from + 2))));
      this.socket.end();
    }
  }

  /** One Engine.IO packet, `data[from, to)`. */
  private packet(data: Buffer, from: number, to: number): void {
    if (this.onHandshakePacket) {
      this.onHandshakePacket(data.toString("utf8", from, to));
      return;
    }
    if (data[from] === 0x34 /* 4: message */) {
      if (data[from + 1] === 0x32 /* 2: event */) {
        if (this.chat && to - from > CHAT.length && CHAT.compare(data, from, from + CHAT.length) === 0) {
          this.chatStamp(data, from + CHAT.length, to);
          return;
        }
        for (const h of this.raw) {
          if (to - from >= h.prefix.length && h.prefix.compare(data, from, from + h.prefix.length) === 0)
            h.fn(data.subarray(from, to));
        }
        return;
      }
      if (data[from + 1] === 0x33 /* 3: ack */) {
        const text = data.toString("utf8", from, to);
        const bracket = text.indexOf("[");
        const id = Number(text.slice(2, bracket));
        const resolve = this.acks.get(id);
        if (!resolve) return;
        this.acks.delete(id);
        resolve((JSON.parse(text.slice(bracket)) as AckReply[])[0] as AckReply);
      }
      return;
    }
    if (data[from] === 0x32 /* 2: ping */ && to - from === 1) this.send("3");
  }

  /** Finds `"body":"` in `data[from, to)` and reads `<sender>|<int>.<frac>"` after it, without allocating. */
  private chatStamp(data: Buffer, from: number, to: number): void {
    const fn = this.chat as (sender: number, t: number) => void;
    let k = from;
    const last = to - BODY.length;
    for (; k <= last; k++) {
      if (data[k] === 0x22 && data[k + 1] === 0x62 /* "b */ && BODY.compare(data, k, k + BODY.length) === 0) break;
    }
    if (k > last) {
      fn(Number.NaN, Number.NaN);
      return;
    }
    k += BODY.length;
    let sender = 0;
    let digits = 0;
    for (; k < to && data[k] !== 0x7c /* | */; k++, digits++) {
      const c = (data[k] as number) - 0x30;
      if (c < 0 || c > 9) break;
      sender = sender * 10 + c;
    }
    if (digits === 0 || data[k] !== 0x7c) {
      fn(Number.NaN, Number.NaN);
      return;
    }
    k++;
    let whole = 0;
    let scale = 1;
    let fraction = false;
    digits = 0;
    for (; k < to && data[k] !== 0x22; k++) {
      const c = data[k] as number;
      if (c === 0x2e /* . */ && !fraction) {
        fraction = true;
        continue;
      }
      if (c < 0x30 || c > 0x39) {
        fn(Number.NaN, Number.NaN);
        return;
      }
      whole = whole * 10 + (c - 0x30);
      digits++;
      if (fraction) scale *= 10;
    }
    fn(sender, digits > 0 && data[k] === 0x22 ? whole / scale : Number.NaN);
  }
}
