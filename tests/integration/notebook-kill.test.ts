import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { insertCell } from "../../shared/notebook/model.ts";
import type { Room } from "../../shared/schemas/rooms.ts";
import { type Editor, jsonOf, notebookOf, openEditor, tokenOf } from "../helpers/collab.ts";
import { registerUser, type TestUser, waitFor } from "../helpers/factories.ts";
import { type NodeProcess, type ProcessCluster, startProcessCluster } from "../helpers/node-process.ts";

let cluster: ProcessCluster;
let owner: TestUser;
let room: Room;
const editors: Editor[] = [];
const nodeA = () => cluster.nodes[0] as NodeProcess;
const nodeB = () => cluster.nodes[1] as NodeProcess;

beforeAll(async () => {
  cluster = await startProcessCluster(2);
  owner = await registerUser(nodeA().url, "Owner");
  room = (await owner.client.post<Room>("/api/v1/rooms", { name: "Doomed notebook", language: "en" })).body;
}, 60_000);
afterAll(async () => {
  for (const e of editors) e.close();
  await cluster?.close();
});

describe("a notebook when a node is killed", () => {
  it("keeps every stored edit and drops the dead node's cursors from the other nodes within seconds", async () => {
    const bob = await registerUser(nodeB().url, "Bob");
    await bob.client.post("/api/v1/rooms/join", { code: room.inviteCode });
    const notebookId = (await notebookOf(owner.client, room.id)).id;
    const onA = await openEditor(nodeA().url, notebookId, await tokenOf(owner.client));
    const onB = await openEditor(nodeB().url, notebookId, await tokenOf(bob.client));
    editors.push(onA, onB);
    onA.provider.awareness.setLocalStateField("user", { name: "Owner" });
    insertCell(onA.doc, 0, { type: "code", source: "print('before the crash')" });
    await waitFor(
      () => onB.provider.awareness.getStates().has(onA.doc.clientID) && jsonOf(onB.doc) === jsonOf(onA.doc),
    );
    // Stored before it was relayed: B only sees what A stored.
    const killedAt = Date.now();
    nodeA().kill("SIGKILL");
    await waitFor(() => !onB.provider.awareness.getStates().has(onA.doc.clientID), 20_000);
    // The heartbeat says so within seconds (awareness's own timeout would take 30 s).
    expect(Date.now() - killedAt).toBeLessThan(15_000);
    const fresh = await openEditor(nodeB().url, notebookId, await tokenOf(bob.client));
    editors.push(fresh);
    expect(jsonOf(fresh.doc)).toContain("before the crash");
  }, 60_000);
});
