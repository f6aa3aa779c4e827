import { describe, expect, it } from "vitest";
import * as Y from "yjs";
import {
  type CellData,
  type CellMap,
  cellsOf,
  findCell,
  findCellIndex,
  insertCell,
  metaOf,
  newCellId,
  readCell,
  readNotebook,
  replaceCells,
  setOutputs,
} from "../../shared/notebook/model.ts";

const alice = { userId: "u-alice", name: "Alice" };
const bob = { userId: "u-bob", name: "Bob" };

/** Sends everything `from` has that `to` lacks, as a y-websocket peer would. */
function sync(from: Y.Doc, to: Y.Doc): void {
  Y.applyUpdate(to, Y.encodeStateAsUpdate(from, Y.encodeStateVector(to)));
}

function cell(data: Partial<CellData> & Pick<CellData, "id" | "type">): CellData {
  return { source: "", outputs: [], executionCount: null, ranBy: null, ranAt: null, ...data };
}

describe("insertCell and readNotebook", () => {
  it("reads a new cell with empty defaults and a 12-character base-36 id", () => {
    const doc = new Y.Doc();
    const inserted = insertCell(doc, 0, { type: "code" });
    const data = readCell(inserted);
    expect(data).toEqual({
      id: data.id,
      type: "code",
      source: "",
      outputs: [],
      executionCount: null,
      ranBy: null,
      ranAt: null,
    });
    expect(data.id).toMatch(/^[0-9a-z]{12}$/);
    expect(newCellId()).not.toBe(newCellId());
  });

  it("inserts at the index, clamped to the array, and keeps the given fields", () => {
    const doc = new Y.Doc();
    insertCell(doc, 0, { id: "b", type: "code", source: "x = 1" });
    insertCell(doc, -5, { id: "a", type: "markdown", source: "# Title" });
    insertCell(doc, 99, { id: "d", type: "code" });
    insertCell(doc, 2, { id: "c", type: "code", outputs: [{ type: "result", text: "1" }], executionCount: 4 });
    const cells = readNotebook(doc);
    expect(cells.map((c) => c.id)).toEqual(["a", "b", "c", "d"]);
    expect(cells[0]).toMatchObject({ type: "markdown", source: "# Title" });
    expect(cells[2]).toMatchObject({ outputs: [{ type: "result", text: "1" }], executionCount: 4 });
    expect(findCellIndex(doc, "c")).toBe(2);
    expect(findCellIndex(doc, "zz")).toBe(-1);
    expect(findCell(doc, "zz")).toBeUndefined();
  });

  it("stores the source as a Y.Text that edits read through", () => {
    const doc = new Y.Doc();
    const inserted = insertCell(doc, 0, { id: "a", type: "code", source: "print()" });
    const text = inserted.get("source");
    expect(text).toBeInstanceOf(Y.Text);
    (text as Y.Text).insert(6, "'hi'");
    expect(readNotebook(doc)[0]?.source).toBe("print('hi')");
  });
});

describe("setOutputs", () => {
  it("increments the notebook's counter and records who ran the cell and when", () => {
    const doc = new Y.Doc();
    insertCell(doc, 0, { id: "a", type: "code" });
    insertCell(doc, 1, { id: "b", type: "code" });
    const first = new Date("2025-03-01T10:00:00.000Z");
    const second = new Date("2025-03-01T10:05:00.000Z");

    expect(setOutputs(doc, "a", [{ type: "stream", name: "stdout", text: "hi\n" }], alice, first)).toBe(true);
    expect(setOutputs(doc, "b", [{ type: "result", text: "2" }], bob, second)).toBe(true);

    const [a, b] = readNotebook(doc);
    expect(a).toMatchObject({
      outputs: [{ type: "stream", name: "stdout", text: "hi\n" }],
      executionCount: 1,
      ranBy: alice,
      ranAt: first.toISOString(),
    });
    expect(b).toMatchObject({ executionCount: 2, ranBy: bob, ranAt: second.toISOString() });
    expect(metaOf(doc).get("executionCounter")).toBe(2);
  });

  it("replaces the previous run's outputs as a whole", () => {
    const doc = new Y.Doc();
    insertCell(doc, 0, { id: "a", type: "code" });
    setOutputs(doc, "a", [{ type: "result", text: "1" }], alice);
    setOutputs(doc, "a", [{ type: "error", ename: "NameError", evalue: "x", traceback: ["tb"] }], bob);
    expect(readNotebook(doc)[0]).toMatchObject({
      outputs: [{ type: "error", ename: "NameError", evalue: "x", traceback: ["tb"] }],
      executionCount: 2,
      ranBy: bob,
    });
  });

  it("writes a run as one transaction", () => {
    const doc = new Y.Doc();
    insertCell(doc, 0, { id: "a", type: "code" });
    let updates = 0;
    doc.on("update", () => updates++);
    setOutputs(doc, "a", [], alice);
    expect(updates).toBe(1);
  });

  it("returns false and changes nothing when the cell was deleted while it ran", () => {
    const doc = new Y.Doc();
    insertCell(doc, 0, { id: "a", type: "code" });
    setOutputs(doc, "a", [], alice);
    cellsOf(doc).delete(findCellIndex(doc, "a"), 1);

    expect(setOutputs(doc, "a", [{ type: "result", text: "late" }], alice)).toBe(false);
    expect(readNotebook(doc)).toEqual([]);
    expect(metaOf(doc).get("executionCounter")).toBe(1);
  });
});

describe("replaceCells", () => {
  const original = [cell({ id: "a", type: "code", source: "x = 1" }), cell({ id: "b", type: "markdown" })];
  const restored = [
    cell({
      id: "r1",
      type: "code",
      source: "y = 2\ny",
      outputs: [{ type: "result", text: "2" }],
      executionCount: 7,
      ranBy: alice,
      ranAt: "2025-01-01T00:00:00.000Z",
    }),
    cell({ id: "r2", type: "markdown", source: "## Restored" }),
  ];

  it("makes the document hold exactly the given cells, in order", () => {
    const doc = new Y.Doc();
    replaceCells(doc, original);
    replaceCells(doc, restored);
    expect(readNotebook(doc)).toEqual(restored);
  });

  it("is a new edit that a peer synced before and after follows", () => {
    const server = new Y.Doc();
    const peer = new Y.Doc();
    replaceCells(server, original);
    sync(server, peer);
    expect(readNotebook(peer)).toEqual(original);
    const before = cellsOf(server).get(0);

    replaceCells(server, restored);
    sync(server, peer);

    expect(readNotebook(peer)).toEqual(restored);
    // Copies, not the old cells moved: history is extended, not rewritten.
    expect(cellsOf(server).get(0)).not.toBe(before);
  });

  it("wins over a peer's concurrent edit of a replaced cell, and both sides converge", () => {
    const server = new Y.Doc();
    const peer = new Y.Doc();
    replaceCells(server, original);
    sync(server, peer);

    // The peer types into the old cell while the server restores.
    const old = findCell(peer, "a")?.get("source") as Y.Text;
    old.insert(old.length, "\nprint(x)");
    insertCell(peer, 2, { id: "new", type: "code", source: "added" });
    replaceCells(server, restored);
    sync(peer, server);
    sync(server, peer);

    expect(readNotebook(peer)).toEqual(readNotebook(server));
    // The deleted cell's edit is gone; a cell inserted concurrently is kept, after the restored ones.
    expect(readNotebook(server).map((c) => c.id)).toEqual(["r1", "r2", "new"]);
    expect(readNotebook(server)[0]?.source).toBe("y = 2\ny");
  });

  it("sends one update for the whole replacement", () => {
    const doc = new Y.Doc();
    replaceCells(doc, original);
    let updates = 0;
    doc.on("update", () => updates++);
    replaceCells(doc, restored);
    expect(updates).toBe(1);
  });
});

describe("readCell", () => {
  it("reads missing and mistyped keys written by a foreign client as empty", () => {
    const foreign = new Y.Doc();
    const doc = new Y.Doc();
    const odd: CellMap = new Y.Map();
    foreign.getArray<CellMap>("cells").push([odd, new Y.Map()]);
    foreign.transact(() => {
      odd.set("id", 42);
      odd.set("type", "python");
      odd.set("source", ["not", "text"]);
      odd.set("outputs", "none");
      odd.set("executionCount", "3");
      odd.set("ranBy", "bob");
      odd.set("ranAt", 1700000000);
    });
    sync(foreign, doc);

    const empty = { type: "code", source: "", outputs: [], executionCount: null, ranBy: null, ranAt: null };
    expect(readNotebook(doc)).toEqual([
      { id: "42", ...empty },
      { id: "", ...empty },
    ]);
  });

  it("accepts a plain string source", () => {
    const doc = new Y.Doc();
    const plain: CellMap = new Y.Map();
    cellsOf(doc).push([plain]);
    plain.set("type", "markdown");
    plain.set("source", "plain *text*");
    expect(readCell(plain)).toMatchObject({ type: "markdown", source: "plain *text*" });
  });
});
