/**
 * The baseline of bench/notebook.ts, a server kind of server-child.ts (BENCH_SERVER=bare-yjs): the y-websocket
 * protocol (y-protocols sync and awareness) on `ws` (`noServer`) at DoctorPy's path, `/collab/<notebookId>`, with
 * one in-memory Y.Doc per notebook. No auth, no limits, no validation, no persistence. With BENCH_REDIS_URL, the
 * nodes relay each update a client made on them through Redis pub/sub (one channel per notebook, subscribed
 * before the first connection to it is accepted); there is no catch-up for a node that opens a notebook late,
 * which the benchmark avoids by connecting every editor before the first edit.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { Redis } from "ioredis";
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import { WebSocket, WebSocketServer } from "ws";
import * as awarenessProtocol from "y-protocols/awareness";
import * as syncProtocol from "y-protocols/sync";
import * as Y from "yjs";
import { COLLAB_PATH, MESSAGE } from "../../shared/notebook/protocol.ts";

/** Origin of a change relayed from another node: broadcast here, never published again. */
const REMOTE = Symbol("remote");
/** Relay message kinds (first byte after the node id). */
const KIND_UPDATE = 0;
const KIND_AWARENESS = 1;

interface BareDoc {
  doc: Y.Doc;
  awareness: awarenessProtocol.Awareness;
  conns: Set<WebSocket>;
}

const frame = (type: number, write: (e: encoding.Encoder) => void): Uint8Array => {
  const e = encoding.createEncoder();
  encoding.writeVarUint(e, type);
  write(e);
  return encoding.toUint8Array(e);
};

/** Starts the bare y-websocket server on 127.0.0.1, port 0. */
export async function startBareYjs(
  host: string,
  redisUrl: string | undefined,
): Promise<{ url: string; close(): Promise<void> }> {
  const node = randomBytes(8);
  const http = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ noServer: true });
  const docs = new Map<string, Promise<BareDoc>>();
  let pub: Redis | undefined;
  let sub: Redis | undefined;
  if (redisUrl) {
    pub = new Redis(redisUrl, { lazyConnect: true });
    sub = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect()]);
    sub.on("messageBuffer", (channel: Buffer, message: Buffer) => {
      if (message.subarray(0, node.length).equals(node)) return;
      const id = channel.toString().slice("bare-yjs:".length);
      void docs.get(id)?.then((d) => {
        const data = new Uint8Array(message.buffer, message.byteOffset + node.length + 1);
        if (message[node.length] === KIND_UPDATE) Y.applyUpdate(d.doc, data, REMOTE);
        else awarenessProtocol.applyAwarenessUpdate(d.awareness, data, REMOTE);
      });
    });
  }
  const publish = (id: string, kind: number, data: Uint8Array) => {
    if (!pub) return;
    void pub.publish(`bare-yjs:${id}`, Buffer.concat([node, Buffer.of(kind), data]));
  };

  const open = async (id: string): Promise<BareDoc> => {
    const doc = new Y.Doc();
    const awareness = new awarenessProtocol.Awareness(doc);
    awareness.setLocalState(null);
    const d: BareDoc = { doc, awareness, conns: new Set() };
    doc.on("update", (update: Uint8Array, origin: unknown) => {
      const message = frame(MESSAGE.sync, (e) => syncProtocol.writeUpdate(e, update));
      for (const c of d.conns) if (c !== origin && c.readyState === WebSocket.OPEN) c.send(message);
      if (origin !== REMOTE) publish(id, KIND_UPDATE, update);
    });
    awareness.on("update", ({ added, updated, removed }: Record<string, number[]>, origin: unknown) => {
      const changed = [...(added ?? []), ...(updated ?? []), ...(removed ?? [])];
      const update = awarenessProtocol.encodeAwarenessUpdate(awareness, changed);
      const message = frame(MESSAGE.awareness, (e) => encoding.writeVarUint8Array(e, update));
      for (const c of d.conns) if (c.readyState === WebSocket.OPEN) c.send(message);
      if (origin !== REMOTE && origin !== "local" && origin !== "timeout") publish(id, KIND_AWARENESS, update);
    });
    await sub?.subscribe(`bare-yjs:${id}`);
    return d;
  };

  const connect = (ws: WebSocket, d: BareDoc) => {
    ws.binaryType = "nodebuffer";
    d.conns.add(ws);
    const mine = new Set<number>();
    ws.on("message", (data: Buffer) => {
      try {
        const decoder = decoding.createDecoder(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        const type = decoding.readVarUint(decoder);
        if (type === MESSAGE.sync) {
          const reply = encoding.createEncoder();
          encoding.writeVarUint(reply, MESSAGE.sync);
          syncProtocol.readSyncMessage(decoder, reply, d.doc, ws);
          if (encoding.length(reply) > 1) ws.send(encoding.toUint8Array(reply));
        } else if (type === MESSAGE.awareness) {
          const update = decoding.readVarUint8Array(decoder);
          const before = new Set(d.awareness.getStates().keys());
          awarenessProtocol.applyAwarenessUpdate(d.awareness, update, ws);
          for (const id of d.awareness.getStates().keys()) if (!before.has(id)) mine.add(id);
        } else if (type === MESSAGE.queryAwareness) {
          const states = [...d.awareness.getStates().keys()];
          ws.send(
            frame(MESSAGE.awareness, (e) =>
              encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(d.awareness, states)),
            ),
          );
        }
      } catch {
        ws.close(4400, "malformed message");
      }
    });
    ws.on("close", () => {
      d.conns.delete(ws);
      if (mine.size > 0) awarenessProtocol.removeAwarenessStates(d.awareness, [...mine], ws);
    });
    ws.send(frame(MESSAGE.sync, (e) => syncProtocol.writeSyncStep1(e, d.doc)));
    const states = [...d.awareness.getStates().keys()];
    if (states.length > 0)
      ws.send(
        frame(MESSAGE.awareness, (e) =>
          encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(d.awareness, states)),
        ),
      );
  };

  http.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? "").split("?")[0] ?? "";
    if (!path.startsWith(COLLAB_PATH)) {
      socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    const id = path.slice(COLLAB_PATH.length);
    let d = docs.get(id);
    if (!d) {
      d = open(id);
      docs.set(id, d);
    }
    d.then(
      (doc) => wss.handleUpgrade(req, socket, head, (ws) => connect(ws, doc)),
      () => socket.destroy(),
    );
  });

  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(0, host, () => resolve());
  });
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      pub?.disconnect();
      sub?.disconnect();
    },
  };
}
