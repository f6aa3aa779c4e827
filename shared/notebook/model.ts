/**
 * The shared notebook's document model, used by the server (import, export, snapshots) and the client.
 *
 * One Y.Doc per notebook:
 * - `cells`: Y.Array of Y.Map, one per cell, in order. A cell's keys:
 *   - `id`: string, stable for the cell's life (survives edits and reordering by copy);
 *   - `type`: "code" | "markdown";
 *   - `source`: Y.Text, edited character by character by everyone;
 *   - `outputs`: a plain JSON array of {@link CellOutput}, replaced as a whole by each run;
 *   - `executionCount`: number | null;
 *   - `ranBy`: { userId, name } | null, and `ranAt`: ISO-8601 string | null.
 * - `meta`: Y.Map with `executionCounter` (the last execution count given) and, for imports, `nbformat`
 *   metadata kept as JSON under `ipynb`.
 */
import * as Y from "yjs";

export const CELLS = "cells";
export const META = "meta";

export type CellType = "code" | "markdown";

export type CellOutput =
  | { type: "stream"; name: "stdout" | "stderr"; text: string }
  /** The value of the cell's last expression, as its repr. */
  | { type: "result"; text: string }
  | { type: "error"; ename: string; evalue: string; traceback: string[] };

export interface RunBy {
  userId: string;
  name: string;
}

/** A cell as plain data (what export, snapshots and tests compare). */
export interface CellData {
  id: string;
  type: CellType;
  source: string;
  outputs: CellOutput[];
  executionCount: number | null;
  ranBy: RunBy | null;
  ranAt: string | null;
}

export type CellMap = Y.Map<unknown>;

export function cellsOf(doc: Y.Doc): Y.Array<CellMap> {
  return doc.getArray<CellMap>(CELLS);
}

export function metaOf(doc: Y.Doc): Y.Map<unknown> {
  return doc.getMap(META);
}

/** A random cell id (12 base-36 characters, like nbformat 4.5's cell ids). */
export function newCellId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => (b % 36).toString(36)).join("");
}

/** A new cell, not yet in a document. */
export function createCell(data: Partial<CellData> & { type: CellType }): CellMap {
  const cell = new Y.Map<unknown>();
  cell.set("id", data.id ?? newCellId());
  cell.set("type", data.type);
  cell.set("source", new Y.Text(data.source ?? ""));
  cell.set("outputs", data.outputs ?? []);
  cell.set("executionCount", data.executionCount ?? null);
  cell.set("ranBy", data.ranBy ?? null);
  cell.set("ranAt", data.ranAt ?? null);
  return cell;
}

/** Inserts a cell at `index` (clamped to the array) and returns it. */
export function insertCell(doc: Y.Doc, index: number, data: Partial<CellData> & { type: CellType }): CellMap {
  const cells = cellsOf(doc);
  const cell = createCell(data);
  cells.insert(Math.max(0, Math.min(index, cells.length)), [cell]);
  return cell;
}

export function findCellIndex(doc: Y.Doc, id: string): number {
  return cellsOf(doc)
    .toArray()
    .findIndex((c) => c.get("id") === id);
}

export function findCell(doc: Y.Doc, id: string): CellMap | undefined {
  return cellsOf(doc)
    .toArray()
    .find((c) => c.get("id") === id);
}

/** A cell as plain data; missing or mistyped keys (any Yjs client may write) read as empty. */
export function readCell(cell: CellMap): CellData {
  const source = cell.get("source");
  const type = cell.get("type");
  const count = cell.get("executionCount");
  const outputs = cell.get("outputs");
  const ranBy = cell.get("ranBy") as RunBy | null | undefined;
  const ranAt = cell.get("ranAt");
  return {
    id: String(cell.get("id") ?? ""),
    type: type === "markdown" ? "markdown" : "code",
    source: source instanceof Y.Text ? source.toString() : typeof source === "string" ? source : "",
    outputs: Array.isArray(outputs) ? (outputs as CellOutput[]) : [],
    executionCount: typeof count === "number" ? count : null,
    ranBy: ranBy && typeof ranBy === "object" ? ranBy : null,
    ranAt: typeof ranAt === "string" ? ranAt : null,
  };
}

/** Every cell as plain data, in order. */
export function readNotebook(doc: Y.Doc): CellData[] {
  return cellsOf(doc).toArray().map(readCell);
}

/**
 * Writes a run's outputs into a cell, with who ran it and when, in one transaction; the execution count is the
 * notebook's counter plus one. Returns false when the cell no longer exists (deleted while it ran).
 */
export function setOutputs(doc: Y.Doc, cellId: string, outputs: CellOutput[], ranBy: RunBy, at = new Date()): boolean {
  const cell = findCell(doc, cellId);
  if (!cell) return false;
  doc.transact(() => {
    const meta = metaOf(doc);
    const counter =
      (typeof meta.get("executionCounter") === "number" ? (meta.get("executionCounter") as number) : 0) + 1;
    meta.set("executionCounter", counter);
    cell.set("outputs", outputs);
    cell.set("executionCount", counter);
    cell.set("ranBy", ranBy);
    cell.set("ranAt", at.toISOString());
  });
  return true;
}

/**
 * Makes the document hold `cells` (a restore or an import into an existing notebook) as one new edit: every
 * cell is replaced by a copy, so connected clients follow instead of having history rewritten.
 */
export function replaceCells(doc: Y.Doc, cells: CellData[]): void {
  doc.transact(() => {
    const array = cellsOf(doc);
    array.delete(0, array.length);
    array.insert(
      0,
      cells.map((c) => createCell(c)),
    );
  });
}
