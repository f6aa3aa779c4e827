/**
 * Jupyter `.ipynb` (nbformat 4) import and export for the shared notebook (see `model.ts`).
 *
 * Import accepts what Jupyter, JupyterLab, VS Code and Colab write: `source` and output text as a string or an
 * array of lines, optional cell ids (nbformat 4.5), raw cells (imported as markdown) and output kinds we cannot
 * show (dropped). Export writes nbformat 4.5 the way Jupyter does: sources as arrays of lines, one id per cell.
 *
 * Round trip: for a document whose cell ids are valid and unique and whose markdown cells carry no outputs or
 * execution count (nbformat has no place for them), `notebookFromIpynb(exportIpynb(doc))` equals
 * `readNotebook(doc)`. `ranBy`/`ranAt` travel in each cell's `metadata.doctorpy`.
 */
import type * as Y from "yjs";
import { z } from "zod";
import { type CellData, type CellOutput, metaOf, newCellId, readNotebook, replaceCells } from "./model.ts";

/** Largest `.ipynb` body the HTTP layer accepts, in bytes: check it before `JSON.parse`. */
export const IPYNB_MAX_BYTES = 2_000_000;
/** Most cells an imported notebook may have. */
export const IPYNB_MAX_CELLS = 1000;

/** nbformat 4.5 cell id. */
const CELL_ID = /^[a-zA-Z0-9_-]{1,64}$/;

/** nbformat's "multiline string": one string, or lines to concatenate. */
const MultilineString = z.union([z.string(), z.array(z.string())]);
const JsonObject = z.record(z.string(), z.unknown());

const StreamOutput = z.object({ output_type: z.literal("stream"), name: z.string(), text: MultilineString });
const ExecuteResultOutput = z.object({
  output_type: z.literal("execute_result"),
  execution_count: z.number().int().nullish(),
  data: JsonObject,
  metadata: JsonObject.optional(),
});
const DisplayDataOutput = z.object({
  output_type: z.literal("display_data"),
  data: JsonObject,
  metadata: JsonObject.optional(),
});
const ErrorOutput = z.object({
  output_type: z.literal("error"),
  ename: z.string(),
  evalue: z.string(),
  traceback: z.array(z.string()),
});
type KnownOutput = z.output<
  typeof StreamOutput | typeof ExecuteResultOutput | typeof DisplayDataOutput | typeof ErrorOutput
>;
const KNOWN_OUTPUTS: readonly string[] = ["stream", "execute_result", "display_data", "error"];
/** Output kinds we cannot show (widgets, a later nbformat's): accepted here, dropped on import. */
const OtherOutput = z.object({ output_type: z.string().refine((t) => !KNOWN_OUTPUTS.includes(t)) });
// A known kind with a wrong shape matches no member, so the document is refused rather than silently trimmed.
const Output = z.union([StreamOutput, ExecuteResultOutput, DisplayDataOutput, ErrorOutput, OtherOutput]);
type Output = z.output<typeof Output>;

const cellFields = {
  // An id that is not a string is treated as missing: a new one is given, as for an invalid or duplicate id.
  id: z.union([z.string(), z.number(), z.boolean(), z.null()]).optional(),
  metadata: JsonObject.optional(),
  source: MultilineString,
};
const CodeCell = z.object({
  ...cellFields,
  cell_type: z.literal("code"),
  // nbformat requires both; some writers (Colab) omit them for cells never run.
  outputs: z.array(Output).default([]),
  execution_count: z.number().int().min(0).nullish(),
});
const MarkdownCell = z.object({ ...cellFields, cell_type: z.literal("markdown") });
const RawCell = z.object({ ...cellFields, cell_type: z.literal("raw") });
const KNOWN_CELLS: readonly string[] = ["code", "markdown", "raw"];
/** Cell kinds nbformat 4 does not define: imported as markdown so their text is not lost. */
const OtherCell = z.object({
  ...cellFields,
  cell_type: z.string().refine((t) => !KNOWN_CELLS.includes(t)),
  source: MultilineString.optional(),
});
const Cell = z.union([CodeCell, MarkdownCell, RawCell, OtherCell]);
type Cell = z.output<typeof Cell>;
type KnownCell = z.output<typeof CodeCell | typeof MarkdownCell | typeof RawCell>;

/** The nbformat 4 subset we import. The caller bounds the body to {@link IPYNB_MAX_BYTES} before parsing. */
export const IpynbSchema = z.object({
  nbformat: z.literal(4),
  nbformat_minor: z.number().int().min(0),
  metadata: JsonObject.default({}),
  cells: z.array(Cell).max(IPYNB_MAX_CELLS),
});
export type Ipynb = z.output<typeof IpynbSchema>;

/** Our fields that nbformat has no place for, kept in a cell's `metadata.doctorpy`. */
const DoctorPyMeta = z.object({
  ranBy: z.object({ userId: z.string(), name: z.string() }).nullable().catch(null),
  ranAt: z.string().nullable().catch(null),
});
const NO_RUN = { ranBy: null, ranAt: null };

/** What {@link exportIpynb} writes for an output. */
export type ExportedOutput =
  | { output_type: "stream"; name: "stdout" | "stderr"; text: string[] }
  | {
      output_type: "execute_result";
      execution_count: number | null;
      data: { "text/plain": string[] };
      metadata: Record<string, never>;
    }
  | { output_type: "error"; ename: string; evalue: string; traceback: string[] };

type ExportedCellBase = { id: string; metadata: Record<string, unknown>; source: string[] };
/** What {@link exportIpynb} writes for a cell. */
export type ExportedCell =
  | (ExportedCellBase & { cell_type: "code"; execution_count: number | null; outputs: ExportedOutput[] })
  | (ExportedCellBase & { cell_type: "markdown" });

/** An nbformat 4.5 notebook as {@link exportIpynb} writes it; also a valid {@link Ipynb}. */
export type ExportedIpynb = {
  nbformat: 4;
  nbformat_minor: 5;
  metadata: Record<string, unknown>;
  cells: ExportedCell[];
};

/** Cells as plain data, in order, from a parsed notebook; ids are kept when valid and unique, else given. */
export function notebookFromIpynb(nb: Ipynb): CellData[] {
  const ids = uniqueCellIds(nb.cells.map((c) => c.id));
  return nb.cells.map((cell, i) => ({ ...importCell(cell), id: ids[i] ?? newCellId() }));
}

/**
 * Makes `doc` hold the notebook's cells, as one new edit (see `replaceCells`), and keeps its metadata under
 * `meta.get("ipynb")` for the next export. The execution counter is left as it is.
 */
export function importIpynb(doc: Y.Doc, nb: Ipynb): void {
  const cells = notebookFromIpynb(nb);
  doc.transact(() => {
    replaceCells(doc, cells);
    metaOf(doc).set("ipynb", structuredClone(nb.metadata));
  });
}

/**
 * The document as nbformat 4.5 JSON. Ids that are not valid nbformat ids, or repeat an earlier one, are replaced
 * in the output (not in the document); outputs of a shape the model does not define are left out.
 */
export function exportIpynb(doc: Y.Doc): ExportedIpynb {
  const cells = readNotebook(doc);
  const ids = uniqueCellIds(cells.map((c) => c.id));
  return {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: exportMetadata(metaOf(doc).get("ipynb")),
    cells: cells.map((cell, i) => exportCell(cell, ids[i] ?? newCellId())),
  };
}

/** Each id if valid and not seen before, else a new id unused by any kept one. */
function uniqueCellIds(ids: readonly unknown[]): string[] {
  const taken = new Set<string>();
  const kept = ids.map((id) => {
    if (typeof id !== "string" || !CELL_ID.test(id) || taken.has(id)) return undefined;
    taken.add(id);
    return id;
  });
  return kept.map((id) => {
    if (id !== undefined) return id;
    let fresh = newCellId();
    while (taken.has(fresh)) fresh = newCellId();
    taken.add(fresh);
    return fresh;
  });
}

function isKnownCell(cell: Cell): cell is KnownCell {
  return KNOWN_CELLS.includes(cell.cell_type);
}

function isKnownOutput(output: Output): output is KnownOutput {
  return KNOWN_OUTPUTS.includes(output.output_type);
}

function importCell(cell: Cell): Omit<CellData, "id"> {
  const run = DoctorPyMeta.safeParse(cell.metadata?.doctorpy).data ?? NO_RUN;
  const source = joinLines(cell.source ?? "");
  if (isKnownCell(cell) && cell.cell_type === "code") {
    return {
      type: "code",
      source,
      outputs: cell.outputs.flatMap(importOutput),
      executionCount: cell.execution_count ?? null,
      ...run,
    };
  }
  return { type: "markdown", source, outputs: [], executionCount: null, ...run };
}

function importOutput(output: Output): CellOutput[] {
  if (!isKnownOutput(output)) return [];
  switch (output.output_type) {
    case "stream":
      return [{ type: "stream", name: output.name === "stderr" ? "stderr" : "stdout", text: joinLines(output.text) }];
    case "execute_result":
    case "display_data": {
      // Rich outputs (images, HTML) show as their plain-text form; without one there is nothing we can show.
      const plain = MultilineString.safeParse(output.data["text/plain"]);
      return plain.success ? [{ type: "result", text: joinLines(plain.data) }] : [];
    }
    case "error":
      return [{ type: "error", ename: output.ename, evalue: output.evalue, traceback: [...output.traceback] }];
  }
}

/** The model's outputs, as written by any Yjs client: anything else is left out of an export. */
const ModelOutput = z.discriminatedUnion("type", [
  z.object({ type: z.literal("stream"), name: z.enum(["stdout", "stderr"]), text: z.string() }),
  z.object({ type: z.literal("result"), text: z.string() }),
  z.object({ type: z.literal("error"), ename: z.string(), evalue: z.string(), traceback: z.array(z.string()) }),
]);

function exportCell(cell: CellData, id: string): ExportedCell {
  const run = DoctorPyMeta.parse({ ranBy: cell.ranBy, ranAt: cell.ranAt });
  const metadata = run.ranBy !== null || run.ranAt !== null ? { doctorpy: run } : {};
  const source = splitLines(cell.source);
  if (cell.type === "markdown") return { id, cell_type: "markdown", metadata, source };
  const n = cell.executionCount;
  const count = n !== null && Number.isInteger(n) && n >= 0 ? n : null;
  const outputs = cell.outputs.flatMap((o): ExportedOutput[] => {
    const output = ModelOutput.safeParse(o).data;
    switch (output?.type) {
      case "stream":
        return [{ output_type: "stream", name: output.name, text: splitLines(output.text) }];
      case "result":
        return [
          {
            output_type: "execute_result",
            execution_count: count,
            data: { "text/plain": splitLines(output.text) },
            metadata: {},
          },
        ];
      case "error":
        return [{ output_type: "error", ename: output.ename, evalue: output.evalue, traceback: output.traceback }];
      default:
        return [];
    }
  });
  return { id, cell_type: "code", metadata, source, execution_count: count, outputs };
}

function exportMetadata(kept: unknown): Record<string, unknown> {
  // A copy: the caller may change what it gets without touching the document's state.
  const metadata = structuredClone(JsonObject.safeParse(kept).data ?? {});
  return {
    ...metadata,
    kernelspec: metadata.kernelspec ?? { name: "python3", display_name: "Python 3", language: "python" },
    language_info: metadata.language_info ?? { name: "python", file_extension: ".py", mimetype: "text/x-python" },
  };
}

/** Jupyter's line split: every line keeps its "\n" except the last; "" is no lines. Joining gives `text` back. */
function splitLines(text: string): string[] {
  const lines = text.split("\n").map((line, i, all) => (i < all.length - 1 ? `${line}\n` : line));
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

function joinLines(text: string | string[]): string {
  return typeof text === "string" ? text : text.join("");
}
