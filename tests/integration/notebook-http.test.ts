import { readFileSync } from "node:fs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { cellsOf, readNotebook, setOutputs } from "../../shared/notebook/model.ts";
import type { AuditPage } from "../../shared/schemas/admin.ts";
import type { NotebookInfo, NotebookVersion } from "../../shared/schemas/notebooks.ts";
import type { Room } from "../../shared/schemas/rooms.ts";
import { type Editor, notebookOf, openEditor, tokenOf } from "../helpers/collab.ts";
import { registerUser, type TestUser, waitFor } from "../helpers/factories.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
let owner: TestUser;
let member: TestUser;
let observer: TestUser;
let room: Room;
const editors: Editor[] = [];
const fixture = JSON.parse(readFileSync(new URL("../fixtures/notebook.ipynb", import.meta.url), "utf8"));
const url = (path = "") => `/api/v1/rooms/${room.id}/notebook${path}`;

beforeAll(async () => {
  server = await startServer();
  // The first account is the admin: it reads the audit log.
  owner = await registerUser(server.url, "Owner");
  member = await registerUser(server.url, "Member");
  observer = await registerUser(server.url, "Observer");
  room = (await owner.client.post<Room>("/api/v1/rooms", { name: "HTTP nb", topic: "", language: "en" })).body;
  for (const u of [member, observer]) await u.client.post("/api/v1/rooms/join", { code: room.inviteCode });
  await owner.client.patch(`/api/v1/rooms/${room.id}/members/${observer.me.user.id}`, { role: "observer" });
});
afterEach(() => {
  for (const e of editors.splice(0)) e.close();
});
afterAll(() => server?.close());

const audited = async (action: string, outcome = "success") =>
  (await owner.client.get<AuditPage>(`/api/v1/admin/audit?action=${action}&outcome=${outcome}`)).body.items;

describe("a room's notebook over HTTP", () => {
  it("answers 404 to non-members and describes the notebook to members by role", async () => {
    const stranger = await registerUser(server.url, "Stranger");
    expect((await stranger.client.get(url())).status).toBe(404);
    expect((await stranger.client.get(url("/ipynb"))).status).toBe(404);
    expect((await member.client.get<NotebookInfo>(url())).body).toMatchObject({ writable: true, canManage: false });
    expect((await observer.client.get<NotebookInfo>(url())).body).toMatchObject({ writable: false });
  });

  it("imports a Jupyter file as one edit that connected clients follow, and exports it back", async () => {
    const nb = await notebookOf(owner.client, room.id);
    const watcher = await openEditor(server.url, nb.id, await tokenOf(member.client));
    editors.push(watcher);
    const res = await member.client.put<NotebookInfo>(url("/ipynb"), fixture);
    expect(res.status).toBe(200);
    await waitFor(() => cellsOf(watcher.doc).length === fixture.cells.length);
    const exported = (await observer.client.get<{ nbformat: number; cells: { source: string[] }[] }>(url("/ipynb")))
      .body;
    expect(exported.nbformat).toBe(4);
    expect(exported.cells.map((c) => c.source.join(""))).toEqual(readNotebook(watcher.doc).map((c) => c.source));
    // Round trip: importing the export changes nothing a client can see.
    const before = readNotebook(watcher.doc);
    expect((await owner.client.put(url("/ipynb"), exported)).status).toBe(200);
    const fresh = await openEditor(server.url, nb.id, await tokenOf(owner.client));
    editors.push(fresh);
    expect(readNotebook(fresh.doc)).toEqual(before);
    expect((await audited("notebook.import")).some((e) => e.targetId === room.id)).toBe(true);
  });

  it("refuses an import from an observer, and invalid files with the offending fields", async () => {
    expect((await observer.client.put(url("/ipynb"), fixture)).status).toBe(403);
    const bad = await member.client.put<{ code: string; errors: { path: string }[] }>(url("/ipynb"), {
      ...fixture,
      nbformat: 3,
    });
    expect(bad.status).toBe(400);
    expect(bad.body.errors.some((e) => e.path.includes("nbformat"))).toBe(true);
    const many = { ...fixture, cells: Array.from({ length: 1001 }, () => ({ cell_type: "markdown", source: "" })) };
    expect((await member.client.put(url("/ipynb"), many)).status).toBe(400);
  });

  it("saves named versions and restores one as a new edit; only owners and moderators", async () => {
    const nb = await notebookOf(owner.client, room.id);
    const a = await openEditor(server.url, nb.id, await tokenOf(owner.client));
    editors.push(a);
    const saved = await owner.client.post<NotebookVersion>(url("/versions"), { name: "Before the exercise" });
    expect(saved.status).toBe(201);
    const atSave = readNotebook(a.doc);
    setOutputs(a.doc, atSave[0]?.id as string, [{ type: "stream", name: "stdout", text: "later\n" }], {
      userId: owner.me.user.id,
      name: "Owner",
    });
    cellsOf(a.doc).delete(0, 1);
    await waitFor(
      async () => (await owner.client.get<{ cells: unknown[] }>(url("/ipynb"))).body.cells.length === atSave.length - 1,
    );
    expect((await member.client.post(url("/versions"), { name: "mine" })).status).toBe(403);
    expect((await member.client.post(url(`/versions/${saved.body.id}/restore`))).status).toBe(403);
    const list = await member.client.get<{ items: NotebookVersion[] }>(url("/versions"));
    expect(list.body.items.map((v) => v.name)).toContain("Before the exercise");
    const restored = await owner.client.post(url(`/versions/${saved.body.id}/restore`));
    expect(restored.status).toBe(200);
    // The connected client follows the restore: same cells, same sources and outputs as at the save.
    await waitFor(() => readNotebook(a.doc).length === atSave.length);
    expect(readNotebook(a.doc)).toEqual(atSave);
    expect((await audited("notebook.version_restore")).some((e) => e.targetId === room.id)).toBe(true);
    expect((await owner.client.post(url("/versions/00000000-0000-4000-8000-000000000000/restore"))).status).toBe(404);
  });

  it("locks and unlocks (owners and moderators, audited)", async () => {
    expect((await member.client.put(url("/lock"), { locked: true })).status).toBe(403);
    const locked = await owner.client.put<NotebookInfo>(url("/lock"), { locked: true });
    expect(locked.body).toMatchObject({ locked: true, writable: true });
    expect((await member.client.get<NotebookInfo>(url())).body).toMatchObject({ locked: true, writable: false });
    expect((await member.client.put(url("/ipynb"), fixture)).status).toBe(403);
    await owner.client.put(url("/lock"), { locked: false });
    expect((await member.client.get<NotebookInfo>(url())).body.writable).toBe(true);
    expect((await audited("notebook.lock")).some((e) => e.targetId === room.id)).toBe(true);
    expect((await audited("notebook.unlock")).some((e) => e.targetId === room.id)).toBe(true);
    expect((await audited("notebook.lock", "denied")).some((e) => e.actorId === member.me.user.id)).toBe(true);
  });
});
