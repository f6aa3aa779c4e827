import type { AddressInfo, Socket as NetSocket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { corkUntilTurnEnds, rawSocketOf, setWriteHold } from "../../server/realtime/coalesce.ts";
import type { AccessToken } from "../../shared/schemas/auth.ts";
import { registerUser, waitFor } from "../helpers/factories.ts";
import { startServer, type TestServer } from "../helpers/server.ts";
import { connect } from "../helpers/sockets.ts";

/** Counts the system-call-level writes (`_write` and `_writev`) node:net makes on this socket. */
function countWrites(raw: NetSocket): { calls: number } {
  const counter = { calls: 0 };
  const target = raw as unknown as Record<"_write" | "_writev", (...args: unknown[]) => unknown>;
  for (const name of ["_write", "_writev"] as const) {
    const original = target[name].bind(raw);
    target[name] = (...args: unknown[]) => {
      counter.calls++;
      return original(...args);
    };
  }
  return counter;
}

describe("write coalescing on a WebSocket", () => {
  let wss: WebSocketServer;
  beforeAll(async () => {
    wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
    await new Promise((resolve) => wss.once("listening", resolve));
  });
  afterAll(() => new Promise((resolve) => wss.close(resolve)));

  async function pair(): Promise<{ ws: WebSocket; client: WebSocket; received: string[]; writes: { calls: number } }> {
    const serverSide = new Promise<WebSocket>((resolve) => wss.once("connection", resolve));
    const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
    const received: string[] = [];
    client.on("message", (data) => received.push(String(data)));
    const ws = await serverSide;
    const raw = rawSocketOf(ws);
    expect(raw).toBeDefined();
    return { ws, client, received, writes: countWrites(raw as NetSocket) };
  }
  const turn = () => new Promise((resolve) => setImmediate(resolve));

  it("sends what one turn wrote in one write, in order, and uncorks for the next turn", async () => {
    setWriteHold(0);
    const { ws, client, received, writes } = await pair();
    const raw = rawSocketOf(ws);

    for (let i = 0; i < 40; i++) {
      corkUntilTurnEnds(raw);
      ws.send(`first ${i}`);
    }
    await waitFor(() => received.length === 40);
    expect(writes.calls).toBe(1);
    expect(received).toEqual(Array.from({ length: 40 }, (_, i) => `first ${i}`));

    // A later turn corks again; a socket that nobody corks writes as before.
    for (let i = 0; i < 10; i++) {
      corkUntilTurnEnds(raw);
      ws.send(`second ${i}`);
    }
    await waitFor(() => received.length === 50);
    expect(writes.calls).toBe(2);
    ws.send("plain a");
    ws.send("plain b");
    await waitFor(() => received.length === 52);
    expect(writes.calls).toBe(4);
    expect(received.slice(40)).toEqual([...Array.from({ length: 10 }, (_, i) => `second ${i}`), "plain a", "plain b"]);
    client.close();
  });

  it("holds the next write of a socket written to less than the hold ago, then sends it all at once", async () => {
    setWriteHold(60, 0);
    const { ws, client, received, writes } = await pair();
    const raw = rawSocketOf(ws);
    const send = (text: string) => {
      corkUntilTurnEnds(raw);
      ws.send(text);
    };
    send("a");
    await turn();
    expect(writes.calls).toBe(1);
    send("b");
    await turn();
    send("c");
    await turn();
    expect(writes.calls).toBe(1); // b and c wait for the hold
    await waitFor(() => received.length === 3);
    expect(writes.calls).toBe(2);
    expect(received).toEqual(["a", "b", "c"]);
    await new Promise((resolve) => setTimeout(resolve, 80));
    send("d"); // written long enough ago: the end of the turn again
    await turn();
    expect(writes.calls).toBe(3);
    await waitFor(() => received.length === 4);
    setWriteHold(0);
    client.close();
  });

  it("holds only while the event loop is busy", async () => {
    setWriteHold(60);
    const { ws, client, received, writes } = await pair();
    const raw = rawSocketOf(ws);
    const send = (text: string) => {
      corkUntilTurnEnds(raw);
      ws.send(text);
    };
    await new Promise((resolve) => setTimeout(resolve, 250)); // an idle sample
    send("idle 1");
    await turn();
    send("idle 2");
    await turn();
    expect(writes.calls).toBe(2); // not held: each at the end of its turn

    // Keep the loop busy for a few samples (work in slices, with turns in between).
    const until = performance.now() + 350;
    while (performance.now() < until) {
      const slice = performance.now() + 20;
      while (performance.now() < slice) {
        // busy
      }
      await turn();
    }
    send("busy 1");
    await turn();
    send("busy 2");
    await turn();
    expect(writes.calls).toBe(3); // busy 2 waits for the hold
    await waitFor(() => received.length === 4);
    expect(writes.calls).toBe(4);
    expect(received).toEqual(["idle 1", "idle 2", "busy 1", "busy 2"]);
    setWriteHold(0);
    client.close();
  });

  it("leaves a destroyed socket alone", () => {
    const socket = { destroyed: true, cork: () => expect.fail("corked a destroyed socket") } as unknown as NetSocket;
    corkUntilTurnEnds(socket);
    corkUntilTurnEnds(undefined);
  });
});

describe("write coalescing on Socket.IO", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.close());

  /** A new user's Socket.IO client, and the payloads of the `event` it receives, in order. */
  async function listener<T>(event: string) {
    const user = await registerUser(s.url);
    const token = (await user.client.post<AccessToken>("/api/v1/auth/token")).body.token;
    const client = await connect(s.url, { token });
    const received: T[] = [];
    client.onAny((name: string, payload: T) => {
      if (name === event) received.push(payload);
    });
    return { client, received };
  }

  it("delivers a burst of packets to one client in one write, in order", async () => {
    const { client, received } = await listener<number>("test:burst");
    const serverSocket = s.realtime.io.sockets.sockets.get(client.id as string);
    expect(serverSocket).toBeDefined();
    const transport = (serverSocket as unknown as { conn: { transport: { name: string; socket: unknown } } }).conn
      .transport;
    expect(transport.name).toBe("websocket");
    const raw = rawSocketOf(transport.socket);
    expect(raw).toBeDefined();
    const writes = countWrites(raw as NetSocket);

    // Without coalescing, Engine.IO writes the first packet at once and each of the others after the kernel
    // took the one before: 30 writes.
    const emitter = s.realtime.io.to(client.id as string) as unknown as { emit(event: string, n: number): void };
    for (let i = 0; i < 30; i++) emitter.emit("test:burst", i);
    await waitFor(() => received.length === 30);
    expect(received).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(writes.calls).toBe(1);

    // Acks and ordinary traffic still flow: a request made after the burst is answered.
    const pong = await new Promise<unknown>((resolve) =>
      (client as unknown as { emit(e: string, p: unknown, cb: (r: unknown) => void): void }).emit(
        "room:join",
        { roomId: "not-a-uuid" },
        resolve,
      ),
    );
    expect(pong).toMatchObject({ ok: false });

    // A client written to less than the hold ago gets its next packets together once the hold is up.
    setWriteHold(60, 0);
    await new Promise((resolve) => setTimeout(resolve, 80)); // past the hold since the ack
    const before = writes.calls;
    emitter.emit("test:burst", 100);
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes.calls).toBe(before + 1);
    for (let i = 101; i < 110; i++) emitter.emit("test:burst", i);
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes.calls).toBe(before + 1);
    await waitFor(() => received.length === 40);
    expect(writes.calls).toBe(before + 2);
    expect(received.slice(30)).toEqual(Array.from({ length: 10 }, (_, i) => 100 + i));
    setWriteHold(s.config.wsWriteHoldMs);
    client.close();
  });

  it("writes a broadcast's frame straight onto each member's socket, after whatever Engine.IO has queued", async () => {
    const { client, received } = await listener<string>("test:order");
    const serverSocket = s.realtime.io.sockets.sockets.get(client.id as string) as unknown as {
      emit(event: string, p: string): void;
      conn: { on(event: string, fn: () => void): void };
    };
    let packetsMade = 0;
    serverSocket.conn.on("packetCreate", () => packetsMade++);
    const room = s.realtime.io.to(client.id as string) as unknown as { emit(event: string, p: string): void };

    // Broadcasts alone: no Engine.IO packet is made for them.
    for (let i = 0; i < 5; i++) room.emit("test:order", `room ${i}`);
    await waitFor(() => received.length === 5);
    expect(packetsMade).toBe(0);

    // Interleaved with packets of this socket alone (they go through Engine.IO's queue until the end of the
    // turn): a broadcast behind a queued packet waits its turn in the same queue, so the order is kept.
    for (let i = 0; i < 6; i++) {
      if (i % 2 === 0) serverSocket.emit("test:order", `own ${i}`);
      else room.emit("test:order", `room ${i}`);
    }
    await waitFor(() => received.length === 11);
    expect(received.slice(5)).toEqual(["own 0", "room 1", "own 2", "room 3", "own 4", "room 5"]);
    expect(packetsMade).toBe(6);
    client.close();
  });
});
