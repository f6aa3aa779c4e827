/**
 * A load-generator socket that speaks just enough of Engine.IO 4 / Socket.IO 5 over a plain WebSocket: connect
 * with `auth`, answer pings, send events with acks, and hand over the `body` of each `chat:message` without
 * parsing the packet. socket.io-client decodes every packet into objects and emits events, which at ~100k
 * deliveries/s saturates the load generator's core before the server's (the fan-out rows of bench:rooms were
 * limited by the client side). The server does the same work for either client.
 */
import WebSocket from "ws";
import { SOCKET_PATH } from "../../shared/realtime.ts";

export interface AckReply {
  ok: boolean;
  error?: { code: string; message: string };
}

const CHAT = Buffer.from('42["chat:message",');
const BODY = Buffer.from('"body":"');
const QUOTE = 0x22;

export class LightSocket {
  private nextId = 0;
  private readonly acks = new Map<number, (reply: AckReply) => void>();
  private chat: ((body: string) => void) | undefined;
  /** `onEvent` handlers: the raw packet of each event whose packet starts with `prefix` */
  private readonly raw: { prefix: Buffer; fn: (packet: Buffer) => void }[] = [];
  private open = true;

  private constructor(private readonly ws: WebSocket) {
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (!isBinary) this.packet(data);
    });
    ws.on("close", () => {
      this.open = false;
      for (const resolve of this.acks.values()) resolve({ ok: false, error: { code: "closed", message: "closed" } });
      this.acks.clear();
    });
  }

  /** Opens the WebSocket, sends CONNECT with `{ token }`, resolves on the namespace's CONNECT reply. */
  static connect(url: string, token: string | undefined, timeoutMs = 30_000): Promise<LightSocket> {
    const ws = new WebSocket(`${url.replace(/^http/, "ws")}${SOCKET_PATH}/?EIO=4&transport=websocket`, {
      perMessageDeflate: false,
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error("connect timeout")), timeoutMs);
      const fail = (err: Error) => {
        clearTimeout(timer);
        ws.terminate();
        reject(err);
      };
      ws.once("error", fail);
      const onHandshake = (data: Buffer) => {
        const text = data.toString();
        if (text.startsWith("0")) {
          ws.send(`40${JSON.stringify(token ? { token } : {})}`);
        } else if (text.startsWith("40")) {
          clearTimeout(timer);
          ws.off("message", onHandshake);
          ws.off("error", fail);
          ws.on("error", () => {});
          resolve(new LightSocket(ws));
        } else if (text.startsWith("44")) {
          const err = JSON.parse(text.slice(2)) as { message: string; data?: { code?: string } };
          fail(new Error(`connect_error: ${err.message} (${err.data?.code ?? "no code"})`));
        }
      };
      ws.on("message", onHandshake);
    });
  }

  get connected(): boolean {
    return this.open;
  }

  /** Called with the `body` of every `chat:message` (bodies of the benchmark carry no quotes or escapes). */
  onChatBody(fn: (body: string) => void): void {
    this.chat = fn;
  }

  /**
   * Called with the raw packet (`42["<event>",...]`, undecoded) of every `event` that is not a `chat:message`;
   * the caller reads what it needs from the bytes (bench/tutor.ts reads the stamp of each `tutor:delta`).
   */
  onEvent(event: string, fn: (packet: Buffer) => void): void {
    this.raw.push({ prefix: Buffer.from(`42[${JSON.stringify(event)},`), fn });
  }

  /** Sends an event and resolves with its ack, or with `{ ok: false, error: timeout }` after `timeoutMs`. */
  request(event: string, payload: unknown, timeoutMs = 30_000): Promise<AckReply> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.acks.delete(id);
        resolve({ ok: false, error: { code: "ack timeout", message: "ack timeout" } });
      }, timeoutMs);
      this.acks.set(id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.ws.send(`42${id}${JSON.stringify([event, payload])}`);
    });
  }

  close(): void {
    this.chat = undefined;
    this.raw.length = 0;
    this.ws.close();
  }

  private packet(data: Buffer): void {
    if (data[0] === 0x34 /* 4: message */) {
      if (data[1] === 0x32 /* 2: event */) {
        if (this.chat && data.subarray(0, CHAT.length).equals(CHAT)) {
          const start = data.indexOf(BODY, CHAT.length);
          if (start < 0) return;
          const from = start + BODY.length;
          const to = data.indexOf(QUOTE, from);
          this.chat(data.toString("latin1", from, to));
          return;
        }
        for (const h of this.raw) if (data.subarray(0, h.prefix.length).equals(h.prefix)) h.fn(data);
        return;
      }
      if (data[1] === 0x33 /* 3: ack */) {
        const text = data.toString();
        const bracket = text.indexOf("[");
        const id = Number(text.slice(2, bracket));
        const resolve = this.acks.get(id);
        if (!resolve) return;
        this.acks.delete(id);
        resolve((JSON.parse(text.slice(bracket)) as AckReply[])[0] as AckReply);
      }
      return;
    }
    if (data[0] === 0x32 /* 2: ping */) this.ws.send("3");
  }
}
