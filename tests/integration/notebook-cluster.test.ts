import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type * as Y from "yjs";
import { cellsOf, insertCell, readNotebook } from "../../shared/notebook/model.ts";
import { CLOSE, READ_ONLY_REASON } from "../../shared/notebook/protocol.ts";
import type { Room } from "../../shared/schemas/rooms.ts";
import { startCluster, type TestCluster } from "../helpers/cluster.ts";
import { type Editor, jsonOf, notebookOf, openEditor, tokenOf } from "../helpers/collab.ts";
import { registerUser, type TestUser, waitFor } from "../helpers/factories.ts";
import type { TestServer } from "../helpers/server.ts";

let cluster: TestCluster;
let owner: TestUser;
let members: TestUser[];
const editors: Editor[] = [];
const node = (i: number) => cluster.nodes[i] as TestServer;

async function editor(u: TestUser, on: TestServer, notebookId: string) {
  const e = await openEditor(on.url, notebookId, await tokenOf(u.client));
  editors.push(e);
  return e;
}

async function newRoom(): Promise<{ room: Room; notebookId: string }> {
  const room = (await owner.client.post<Room>("/api/v1/rooms", { name: "Cluster nb", topic: "", language: "en" })).body;
  for (const m of members)
    expect((await m.client.post("/api/v1/rooms/join", { code: room.inviteCode })).status).toBe(200);
  return { room, notebookId: (await notebookOf(owner.client, room.id)).id };
}

const sourceOf = (doc: Y.Doc, i = 0) => (cellsOf(doc).get(i) as Y.Map<unknown>).get("source") as Y.Text;
const converged = (es: Editor[]) => es.every((e) => jsonOf(e.doc) === jsonOf((es[0] as Editor).doc));

beforeAll(async () => {
  cluster = await startCluster(3);
  owner = await registerUser(node(0).url, "Owner");
  members = [await registerUser(node(1).url, "Member 1"), await registerUser(node(2).url, "Member 2")];
});
afterEach(() => {
  for (const e of editors.splice(0)) e.close();
});
afterAll(() => cluster?.close());

describe("one notebook edited on three nodes", () => {
  it("converges: stock providers on A, B and C typing at once", async () => {
    const { notebookId } = await newRoom();
    const a = await editor(owner, node(0), notebookId);
    const b = await editor(members[0] as TestUser, node(1), notebookId);
    const c = await editor(members[1] as TestUser, node(2), notebookId);
    insertCell(a.doc, 0, { type: "code", source: "" });
    await waitFor(() => cellsOf(b.doc).length === 1 && cellsOf(c.doc).length === 1);
    for (let i = 0; i < 30; i++)
      for (const [k, e] of [a, b, c].entries()) sourceOf(e.doc).insert(i % 2 ? 0 : sourceOf(e.doc).length, `${k}`);
    await waitFor(() => converged([a, b, c]) && sourceOf(a.doc).length === 90, 10_000);
    for (const k of ["0", "1", "2"]) expect(sourceOf(c.doc).toString().split(k).length - 1).toBe(30);
    // A client arriving later, on any node, gets the same document.
    const late = await editor(owner, node(1), notebookId);
    expect(readNotebook(late.doc)).toEqual(readNotebook(a.doc));
  });

  it("shows each client's awareness on every node, and drops it when the client leaves", async () => {
    const { notebookId } = await newRoom();
    const a = await editor(owner, node(0), notebookId);
    const c = await editor(members[1] as TestUser, node(2), notebookId);
    a.provider.awareness.setLocalStateField("user", { name: "Owner", color: "#f00" });
    const aId = a.doc.clientID;
    await waitFor(
      () => (c.provider.awareness.getStates().get(aId) as { user?: { name: string } })?.user?.name === "Owner",
    );
    a.close();
    await waitFor(() => !c.provider.awareness.getStates().has(aId));
  });

  it("closes a removed member's connections on every node at once", async () => {
    const { room, notebookId } = await newRoom();
    const m = members[0] as TestUser;
    const onB = await editor(m, node(1), notebookId);
    const onC = await editor(m, node(2), notebookId);
    const res = await owner.client.delete(`/api/v1/rooms/${room.id}/members/${m.me.user.id}`);
    expect(res.status).toBe(204);
    await waitFor(() => onB.closes.includes(CLOSE.accessRevoked) && onC.closes.includes(CLOSE.accessRevoked));
  });

  it("makes a locked notebook read-only on every node, except for its owner", async () => {
    const { room, notebookId } = await newRoom();
    const m = members[1] as TestUser;
    const ownerOnA = await editor(owner, node(0), notebookId);
    const memberOnC = await editor(m, node(2), notebookId);
    expect((await owner.client.put(`/api/v1/rooms/${room.id}/notebook/lock`, { locked: true })).status).toBe(200);
    await waitFor(() => memberOnC.denied.includes(READ_ONLY_REASON));
    insertCell(memberOnC.doc, 0, { type: "markdown", source: "member" });
    insertCell(ownerOnA.doc, 0, { type: "markdown", source: "owner" });
    await waitFor(() => jsonOf(memberOnC.doc).includes('"owner"'));
    const fresh = await editor(owner, node(1), notebookId);
    expect(jsonOf(fresh.doc)).toContain('"owner"');
    expect(jsonOf(fresh.doc)).not.toContain('"member"');
    expect((await m.client.get(`/api/v1/rooms/${room.id}/notebook`)).body).toMatchObject({
      locked: true,
      writable: false,
    });
  });

  it("keeps editing through a Redis outage, and the nodes catch up when it is back", async () => {
    const { notebookId } = await newRoom();
    const a = await editor(owner, node(0), notebookId);
    const c = await editor(members[1] as TestUser, node(2), notebookId);
    insertCell(a.doc, 0, { type: "code", source: "" });
    await waitFor(() => cellsOf(c.doc).length === 1);
    await cluster.redis.stop();
    for (let i = 0; i < 10; i++) {
      sourceOf(a.doc).insert(0, "a");
      sourceOf(c.doc).insert(0, "c");
    }
    // Each node still serves its own clients meanwhile.
    const a2 = await editor(owner, node(0), notebookId);
    expect(sourceOf(a2.doc).toString()).toContain("a".repeat(10));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await cluster.redis.start();
    await waitFor(() => converged([a, c, a2]) && sourceOf(c.doc).length === 20, 15_000);
    expect(sourceOf(c.doc).toString().split("a").length - 1).toBe(10);
  });

  it("serves the same document after every node restarted, and after compaction", async () => {
    const { notebookId } = await newRoom();
    const a = await editor(owner, node(0), notebookId);
    const b = await editor(members[0] as TestUser, node(1), notebookId);
    insertCell(a.doc, 0, { type: "code", source: "x = 1" });
    await waitFor(() => cellsOf(b.doc).length === 1);
    insertCell(b.doc, 1, { type: "markdown", source: "# Notes" });
    for (let i = 0; i < 50; i++) sourceOf(a.doc).insert(sourceOf(a.doc).length, ` + ${i}`);
    await waitFor(() => converged([a, b]) && cellsOf(b.doc).length === 2 && sourceOf(b.doc).length > 100);
    const before = readNotebook(a.doc);
    // Access tokens outlive the nodes that issued them (the nodes share their secrets).
    const [ownerToken, memberToken] = [await tokenOf(owner.client), await tokenOf((members[0] as TestUser).client)];
    for (const e of editors.splice(0)) e.close();
    const old = [...cluster.nodes];
    await Promise.all(old.map((n) => n.close()));
    cluster.nodes.splice(0);
    const restarted = [await cluster.addNode(), await cluster.addNode()];
    const fresh = await openEditor((restarted[1] as TestServer).url, notebookId, ownerToken as string);
    editors.push(fresh);
    expect(readNotebook(fresh.doc)).toEqual(before);
    expect(await (restarted[0] as TestServer).deps.notebooks.hub.compactNow(notebookId)).toBeGreaterThan(0);
    const stored = await (restarted[0] as TestServer).deps.notebooks.store.load(notebookId);
    expect(stored.logged).toBe(0);
    expect(stored.updates).toHaveLength(1);
    const afterCompaction = await openEditor((restarted[0] as TestServer).url, notebookId, memberToken as string);
    editors.push(afterCompaction);
    expect(readNotebook(afterCompaction.doc)).toEqual(before);
    // Still one document: an edit on either side reaches the other.
    sourceOf(afterCompaction.doc).insert(0, "# compacted\n");
    await waitFor(() => sourceOf(fresh.doc).toString().startsWith("# compacted\n"));
  });
});
