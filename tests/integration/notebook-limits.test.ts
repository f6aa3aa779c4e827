import fc from "fast-check";
import * as encoding from "lib0/encoding";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import * as Y from "yjs";
import { insertCell } from "../../shared/notebook/model.ts";
import { CLOSE, MESSAGE, NOTEBOOK_LIMITS } from "../../shared/notebook/protocol.ts";
import type { Room } from "../../shared/schemas/rooms.ts";
import { type Editor, jsonOf, notebookOf, openEditor, tokenOf } from "../helpers/collab.ts";
import { registerUser, type TestUser, waitFor } from "../helpers/factories.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
let owner: TestUser;
let token: string;
let notebookId: string;
let otherNotebookId: string;
const editors: Editor[] = [];
const sockets: WebSocket[] = [];

const collabUrl = (id: string, t = token) => `${server.url.replace(/^http/, "ws")}/collab/${id}?token=${t}`;

/** A raw WebSocket on the endpoint; resolves once open. */
async function raw(id = notebookId): Promise<{ ws: WebSocket; closed: Promise<number> }> {
  const ws = new WebSocket(collabUrl(id));
  sockets.push(ws);
  const closed = new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  return { ws, closed };
}

/** The status an upgrade is refused with (or 101 when it is accepted). */
function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.on("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on("open", () => {
      resolve(101);
      ws.close();
    });
    ws.on("error", () => {});
  });
}

function syncUpdate(update: Uint8Array): Uint8Array {
  const e = encoding.createEncoder();
  encoding.writeVarUint(e, MESSAGE.sync);
  encoding.writeVarUint(e, 2);
  encoding.writeVarUint8Array(e, update);
  return encoding.toUint8Array(e);
}

/** An update inserting `n` characters into a fresh document's first cell. */
function bigUpdate(n: number): Uint8Array {
  const doc = new Y.Doc();
  insertCell(doc, 0, { type: "code", source: "x".repeat(n) });
  return Y.encodeStateAsUpdate(doc);
}

beforeAll(async () => {
  server = await startServer();
  owner = await registerUser(server.url, "Owner");
  token = await tokenOf(owner.client);
  const mk = async () =>
    (await owner.client.post<Room>("/api/v1/rooms", { name: "Limits", topic: "", language: "en" })).body;
  notebookId = (await notebookOf(owner.client, (await mk()).id)).id;
  otherNotebookId = (await notebookOf(owner.client, (await mk()).id)).id;
});
afterEach(() => {
  for (const e of editors.splice(0)) e.close();
  for (const s of sockets.splice(0)) s.terminate();
});
afterAll(() => server?.close());

/** An editor on the other notebook that must keep working whatever happens to the first. */
async function bystander(): Promise<() => Promise<void>> {
  const a = await openEditor(server.url, otherNotebookId, token);
  const b = await openEditor(server.url, otherNotebookId, token);
  editors.push(a, b);
  let n = 0;
  return async () => {
    insertCell(a.doc, 0, { type: "markdown", source: `still here ${++n}` });
    await waitFor(() => jsonOf(b.doc) === jsonOf(a.doc));
  };
}

describe("the notebook endpoint's limits", () => {
  it("refuses upgrades without credentials, for non-members and for unknown notebooks, before the WebSocket", async () => {
    const stranger = await registerUser(server.url, "Stranger");
    const strangerToken = await tokenOf(stranger.client);
    expect(await upgradeStatus(`${server.url.replace(/^http/, "ws")}/collab/${notebookId}`)).toBe(401);
    expect(await upgradeStatus(collabUrl(notebookId, "not-a-token"))).toBe(401);
    expect(await upgradeStatus(collabUrl(notebookId, strangerToken))).toBe(404);
    expect(await upgradeStatus(collabUrl("00000000-0000-4000-8000-000000000000"))).toBe(404);
    expect(await upgradeStatus(collabUrl("not-a-uuid"))).toBe(404);
    expect(await upgradeStatus(`${server.url.replace(/^http/, "ws")}/elsewhere`)).toBe(404);
    expect(await upgradeStatus(collabUrl(notebookId))).toBe(101);
  });

  it("takes the session cookie from our own pages, and refuses it from a foreign origin", async () => {
    const plain = `${server.url.replace(/^http/, "ws")}/collab/${notebookId}`;
    const cookie = owner.client.cookie as string;
    expect(await upgradeStatus(plain, { cookie, origin: server.url })).toBe(101);
    expect(await upgradeStatus(plain, { cookie })).toBe(101);
    expect(await upgradeStatus(plain, { cookie, origin: "https://evil.example" })).toBe(403);
    expect(await upgradeStatus(plain, { cookie: "dp_session=forged.value", origin: server.url })).toBe(401);
  });

  it("closes on text frames, unknown message types and bytes that do not decode", async () => {
    const check = await bystander();
    for (const send of [
      (ws: WebSocket) => ws.send("hello"),
      (ws: WebSocket) => ws.send(new Uint8Array([9])),
      (ws: WebSocket) => ws.send(new Uint8Array([MESSAGE.sync, 7])),
      (ws: WebSocket) => ws.send(syncUpdate(new Uint8Array([1, 2, 3, 4, 5, 250, 250, 250]))),
      (ws: WebSocket) => ws.send(new Uint8Array([MESSAGE.awareness, 5, 1, 2])),
    ]) {
      const { ws, closed } = await raw();
      send(ws);
      expect(await closed).toBe(CLOSE.malformed);
    }
    await check();
  });

  it("closes with 1009 on a frame over the message limit, and 4413 on a document over its limit", async () => {
    const check = await bystander();
    const big = await raw();
    big.ws.send(syncUpdate(bigUpdate(NOTEBOOK_LIMITS.messageBytes + 1000)));
    expect(await big.closed).toBe(CLOSE.frameTooLarge);
    const filler = await raw();
    const chunk = Math.floor(NOTEBOOK_LIMITS.messageBytes * 0.9);
    for (let i = 0; i * chunk <= NOTEBOOK_LIMITS.documentBytes + chunk; i++)
      filler.ws.send(syncUpdate(bigUpdate(chunk)));
    expect(await filler.closed).toBe(CLOSE.tooLarge);
    await check();
  });

  it("closes a connection that floods messages past its rate", async () => {
    const check = await bystander();
    const { ws, closed } = await raw();
    const query = new Uint8Array([MESSAGE.queryAwareness]);
    for (let i = 0; i < NOTEBOOK_LIMITS.messagesBurst + 50; i++) ws.send(query);
    expect(await closed).toBe(CLOSE.rateLimited);
    await check();
  });

  it("keeps a connection from setting or erasing another client's awareness", async () => {
    const a = await openEditor(server.url, notebookId, token);
    const watcher = await openEditor(server.url, notebookId, token);
    editors.push(a, watcher);
    a.provider.awareness.setLocalStateField("user", { name: "Alice" });
    const nameOf = () =>
      (watcher.provider.awareness.getStates().get(a.doc.clientID) as { user?: { name?: string } })?.user?.name;
    await waitFor(() => nameOf() === "Alice");
    const { ws } = await raw();
    const spoof = (clock: number, state: string) => {
      const e = encoding.createEncoder();
      encoding.writeVarUint(e, MESSAGE.awareness);
      const inner = encoding.createEncoder();
      encoding.writeVarUint(inner, 2);
      encoding.writeVarUint(inner, a.doc.clientID);
      encoding.writeVarUint(inner, clock);
      encoding.writeVarString(inner, state);
      // Its own entry, which it may set.
      encoding.writeVarUint(inner, 4242);
      encoding.writeVarUint(inner, 1);
      encoding.writeVarString(inner, JSON.stringify({ user: { name: "Mallory" } }));
      encoding.writeVarUint8Array(e, encoding.toUint8Array(inner));
      ws.send(encoding.toUint8Array(e));
    };
    spoof(10_000, JSON.stringify({ user: { name: "Mallory as Alice" } }));
    spoof(10_001, "null");
    await waitFor(
      () =>
        (watcher.provider.awareness.getStates().get(4242) as { user?: { name?: string } })?.user?.name === "Mallory",
    );
    expect(nameOf()).toBe("Alice");
  });

  it("never crashes on random messages: each is refused or harmless, and the notebook keeps working", async () => {
    const check = await bystander();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(0, 1, 2, 3),
        fc.uint8Array({ minLength: 0, maxLength: 64 }),
        async (type, rest) => {
          const { ws, closed } = await raw();
          ws.send(new Uint8Array([type, ...rest]));
          // Either the server closes with a documented code, or it keeps the connection open.
          const code = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(0), 50))]);
          expect([0, CLOSE.malformed]).toContain(code);
          ws.terminate();
        },
      ),
      { numRuns: 60 },
    );
    await check();
    const late = await openEditor(server.url, notebookId, token);
    editors.push(late);
    expect(late.provider.synced).toBe(true);
  });
});
