import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import * as Y from "yjs";
import {
  exportIpynb,
  IPYNB_MAX_BYTES,
  IPYNB_MAX_CELLS,
  type Ipynb,
  IpynbSchema,
  importIpynb,
  notebookFromIpynb,
} from "../../shared/notebook/ipynb.ts";
import { type CellData, type CellOutput, insertCell, metaOf, readNotebook } from "../../shared/notebook/model.ts";

const FIXTURE = resolve(import.meta.dirname, "../fixtures/notebook.ipynb");
const NBFORMAT_ID = /^[a-zA-Z0-9_-]{1,64}$/;

/** A notebook as the HTTP layer would parse it. */
function parse(json: unknown): Ipynb {
  return IpynbSchema.parse(json);
}

function notebook(cells: unknown[], metadata: Record<string, unknown> = {}): Ipynb {
  return parse({ nbformat: 4, nbformat_minor: 5, metadata, cells });
}

function code(source: unknown, outputs: unknown[] = [], extra: Record<string, unknown> = {}) {
  return { cell_type: "code", metadata: {}, source, outputs, execution_count: null, ...extra };
}

describe("importing a notebook written by Jupyter", () => {
  const text = readFileSync(FIXTURE, "utf8");
  const nb = parse(JSON.parse(text));

  it("fits the byte limit the HTTP layer enforces", () => {
    expect(Buffer.byteLength(text)).toBeLessThan(IPYNB_MAX_BYTES);
  });

  it("reads every cell, in order, with its source, outputs and execution count", () => {
    const doc = new Y.Doc();
    importIpynb(doc, nb);
    expect(readNotebook(doc)).toEqual([
      md("intro-1", "# Lists\n\nA list keeps its items *in order*."),
      {
        ...run("a1b2c3d4", "xs = [1, 2, 3]\nprint(len(xs))\nprint(xs)\nsum(xs)", 1),
        outputs: [
          { type: "stream", name: "stdout", text: "3\n[1, 2, 3]\n" },
          { type: "result", text: "6" },
        ],
      },
      // The image has no text form and the widget's output kind is unknown: both are dropped.
      {
        ...run("plot-cell", "show_plot()", 2),
        outputs: [{ type: "result", text: "<Figure size 640x480 with 1 Axes>" }],
      },
      {
        ...run("boom", "1 / 0", 3),
        outputs: [
          { type: "stream", name: "stderr", text: "warning: dividing\n" },
          {
            type: "error",
            ename: "ZeroDivisionError",
            evalue: "division by zero",
            traceback: [
              "\u001b[0;31m---------------------------------------------------------------------------\u001b[0m",
              "\u001b[0;31mZeroDivisionError\u001b[0m                         Traceback (most recent call last)",
              "\u001b[0;31mZeroDivisionError\u001b[0m: division by zero",
            ],
          },
        ],
      },
      md("raw-notes", ".. note:: not run"),
      run("todo", "", null),
    ]);
  });

  it("keeps the notebook's metadata and exports it back unchanged", () => {
    const doc = new Y.Doc();
    importIpynb(doc, nb);
    expect(metaOf(doc).get("ipynb")).toEqual(JSON.parse(text).metadata);
    expect(exportIpynb(doc).metadata).toEqual(JSON.parse(text).metadata);
  });

  it("replaces a document's existing cells", () => {
    const doc = new Y.Doc();
    insertCell(doc, 0, { id: "old", type: "code", source: "gone" });
    importIpynb(doc, nb);
    expect(readNotebook(doc).map((c) => c.id)).toEqual([
      "intro-1",
      "a1b2c3d4",
      "plot-cell",
      "boom",
      "raw-notes",
      "todo",
    ]);
  });
});

function md(id: string, source: string): CellData {
  return { id, type: "markdown", source, outputs: [], executionCount: null, ranBy: null, ranAt: null };
}

function run(id: string, source: string, executionCount: number | null): CellData {
  return { id, type: "code", source, outputs: [], executionCount, ranBy: null, ranAt: null };
}

describe("the schema", () => {
  it("reads a source or output text given as one string or as lines alike", () => {
    const asString = notebook([code("a = 1\nb = 2\n", [{ output_type: "stream", name: "stdout", text: "x\ny" }])]);
    const asLines = notebook([
      code(["a = 1\n", "b = 2\n"], [{ output_type: "stream", name: "stdout", text: ["x\n", "y"] }]),
    ]);
    const [fromString] = notebookFromIpynb(asString);
    const [fromLines] = notebookFromIpynb(asLines);
    expect(fromString).toMatchObject({ source: "a = 1\nb = 2\n", outputs: [{ text: "x\ny" }] });
    expect({ ...fromLines, id: "" }).toEqual({ ...fromString, id: "" });
  });

  it("imports raw and unknown cell kinds as markdown, keeping their text", () => {
    const nb = notebook([
      { cell_type: "raw", metadata: {}, source: ["%%latex\n", "x^2"] },
      { cell_type: "heading", metadata: {}, source: "Old title", level: 1 },
      { cell_type: "mystery", metadata: {} },
    ]);
    expect(notebookFromIpynb(nb).map((c) => [c.type, c.source])).toEqual([
      ["markdown", "%%latex\nx^2"],
      ["markdown", "Old title"],
      ["markdown", ""],
    ]);
  });

  it("drops outputs it cannot show and reads text/plain given as a string or lines", () => {
    const nb = notebook([
      code("x", [
        { output_type: "x-custom", payload: 1 },
        { output_type: "display_data", data: { "image/png": "iVBOR" }, metadata: {} },
        { output_type: "display_data", data: { "text/plain": 3 }, metadata: {} },
        { output_type: "display_data", data: { "text/plain": ["a\n", "b"] }, metadata: {} },
        { output_type: "execute_result", data: { "text/plain": "42" }, metadata: {}, execution_count: 1 },
        { output_type: "stream", name: "weird", text: "to stdout" },
      ]),
    ]);
    expect(notebookFromIpynb(nb)[0]?.outputs).toEqual([
      { type: "result", text: "a\nb" },
      { type: "result", text: "42" },
      { type: "stream", name: "stdout", text: "to stdout" },
    ]);
  });

  it("accepts code cells without outputs or execution count (Colab omits them)", () => {
    const nb = notebook([{ cell_type: "code", metadata: {}, source: "pass" }]);
    expect(notebookFromIpynb(nb)[0]).toMatchObject({ type: "code", outputs: [], executionCount: null });
  });

  const valid = { nbformat: 4, nbformat_minor: 4, metadata: {}, cells: [] };
  it.each([
    ["nbformat 3", { ...valid, nbformat: 3 }],
    ["nbformat as a string", { ...valid, nbformat: "4" }],
    ["a missing nbformat_minor", { nbformat: 4, metadata: {}, cells: [] }],
    ["cells that are not an array", { ...valid, cells: { 0: code("x") } }],
    ["missing cells", { nbformat: 4, nbformat_minor: 4, metadata: {} }],
    ["too many cells", { ...valid, cells: Array.from({ length: IPYNB_MAX_CELLS + 1 }, () => code("")) }],
    ["metadata that is an array", { ...valid, metadata: [] }],
    ["a cell without source", { ...valid, cells: [{ cell_type: "markdown", metadata: {} }] }],
    ["a source of numbers", { ...valid, cells: [code([1, 2])] }],
    ["a stream without text", { ...valid, cells: [code("", [{ output_type: "stream", name: "stdout" }])] }],
    ["an error without traceback", { ...valid, cells: [code("", [{ output_type: "error", ename: "E", evalue: "" }])] }],
    ["a negative execution count", { ...valid, cells: [code("", [], { execution_count: -1 })] }],
    ["a cell that is not an object", { ...valid, cells: ["print(1)"] }],
    ["a document that is not an object", [valid]],
  ])("refuses %s", (_, json) => {
    expect(IpynbSchema.safeParse(json).success).toBe(false);
  });

  it("accepts exactly the most cells allowed", () => {
    const cells = Array.from({ length: IPYNB_MAX_CELLS }, () => code(""));
    expect(IpynbSchema.safeParse({ ...valid, cells }).success).toBe(true);
  });
});

describe("cell ids", () => {
  it("keeps valid unique ids and replaces missing, invalid and repeated ones", () => {
    const ids = [undefined, "keep-me_1", "has space", "", "x".repeat(65), "keep-me_1", 17, "y".repeat(64)];
    const nb = notebook(ids.map((id) => ({ cell_type: "markdown", metadata: {}, source: "", id })));
    const got = notebookFromIpynb(nb).map((c) => c.id);

    expect(got[1]).toBe("keep-me_1");
    expect(got[7]).toBe("y".repeat(64));
    for (const i of [0, 2, 3, 4, 5, 6]) expect(got[i]).not.toBe(ids[i]);
    for (const id of got) expect(id).toMatch(NBFORMAT_ID);
    expect(new Set(got).size).toBe(got.length);
  });

  it("gives valid unique ids on export, without changing the document", () => {
    const doc = new Y.Doc();
    for (const id of ["same", "same", "not valid!"]) insertCell(doc, 99, { id, type: "code" });
    const ids = exportIpynb(doc).cells.map((c) => c.id);
    expect(ids[0]).toBe("same");
    for (const id of ids) expect(id).toMatch(NBFORMAT_ID);
    expect(new Set(ids).size).toBe(3);
    expect(readNotebook(doc).map((c) => c.id)).toEqual(["same", "same", "not valid!"]);
  });
});

describe("exportIpynb", () => {
  it("writes nbformat 4.5 the way Jupyter does", () => {
    const doc = new Y.Doc();
    insertCell(doc, 0, { id: "m", type: "markdown", source: "# T\n\ntext\n" });
    insertCell(doc, 1, {
      id: "c",
      type: "code",
      source: "print(1)\n2",
      executionCount: 5,
      outputs: [
        { type: "stream", name: "stdout", text: "1\n" },
        { type: "result", text: "2" },
        { type: "error", ename: "E", evalue: "v", traceback: ["t1", "t2"] },
      ],
      ranBy: { userId: "u1", name: "Ada" },
      ranAt: "2025-02-03T04:05:06.000Z",
    });
    expect(exportIpynb(doc)).toEqual({
      nbformat: 4,
      nbformat_minor: 5,
      metadata: {
        kernelspec: { name: "python3", display_name: "Python 3", language: "python" },
        language_info: { name: "python", file_extension: ".py", mimetype: "text/x-python" },
      },
      cells: [
        { id: "m", cell_type: "markdown", metadata: {}, source: ["# T\n", "\n", "text\n"] },
        {
          id: "c",
          cell_type: "code",
          metadata: { doctorpy: { ranBy: { userId: "u1", name: "Ada" }, ranAt: "2025-02-03T04:05:06.000Z" } },
          source: ["print(1)\n", "2"],
          execution_count: 5,
          outputs: [
            { output_type: "stream", name: "stdout", text: ["1\n"] },
            { output_type: "execute_result", execution_count: 5, data: { "text/plain": ["2"] }, metadata: {} },
            { output_type: "error", ename: "E", evalue: "v", traceback: ["t1", "t2"] },
          ],
        },
      ],
    });
  });

  it("keeps the imported kernelspec and adds language_info only when missing", () => {
    const doc = new Y.Doc();
    importIpynb(doc, notebook([], { kernelspec: { name: "pyodide", display_name: "Pyodide" }, author: "me" }));
    expect(exportIpynb(doc).metadata).toEqual({
      kernelspec: { name: "pyodide", display_name: "Pyodide" },
      language_info: { name: "python", file_extension: ".py", mimetype: "text/x-python" },
      author: "me",
    });
  });

  it("leaves out outputs a foreign client wrote in a shape the model does not define", () => {
    const doc = new Y.Doc();
    const outputs = [{ type: "stream", name: "stdin", text: "x" }, { type: "image" }, { type: "result", text: "ok" }];
    insertCell(doc, 0, { id: "c", type: "code", outputs: outputs as CellOutput[], executionCount: 1.5 });
    const [cell] = exportIpynb(doc).cells;
    expect(cell).toMatchObject({
      execution_count: null,
      outputs: [{ output_type: "execute_result", data: { "text/plain": ["ok"] } }],
    });
  });

  it("returns a copy that the caller may change without touching the document", () => {
    const doc = new Y.Doc();
    importIpynb(doc, notebook([], { kernelspec: { name: "python3", display_name: "P" } }));
    const exported = exportIpynb(doc);
    (exported.metadata.kernelspec as { name: string }).name = "changed";
    expect(exportIpynb(doc).metadata.kernelspec).toEqual({ name: "python3", display_name: "P" });
  });
});

describe("round trip", () => {
  // Sources and texts mix any code point with every line ending, and are often empty.
  const text = fc
    .array(fc.oneof(fc.string({ unit: "binary", maxLength: 8 }), fc.constantFrom("\n", "\r\n", "\r", "", " ")), {
      maxLength: 8,
    })
    .map((parts) => parts.join(""));
  const plain = { noNullPrototype: true };
  const output: fc.Arbitrary<CellOutput> = fc.oneof(
    fc.record({ type: fc.constant("stream" as const), name: fc.constantFrom("stdout", "stderr"), text }, plain),
    fc.record({ type: fc.constant("result" as const), text }, plain),
    fc.record(
      {
        type: fc.constant("error" as const),
        ename: fc.string({ unit: "binary" }),
        evalue: text,
        traceback: fc.array(text, { maxLength: 4 }),
      },
      plain,
    ),
  );
  const ran = {
    // Y.Map.set refuses objects without Object.prototype.
    ranBy: fc.option(fc.record({ userId: fc.string(), name: fc.string({ unit: "binary" }) }, plain)),
    ranAt: fc.option(fc.integer({ min: 0, max: 4e12 }).map((ms) => new Date(ms).toISOString())),
  };
  const codeCell = fc.record({
    type: fc.constant("code" as const),
    source: text,
    outputs: fc.array(output, { maxLength: 4 }),
    executionCount: fc.option(fc.nat()),
    ...ran,
  });
  // nbformat has no outputs or execution count for markdown cells.
  const markdownCell = fc.record({
    type: fc.constant("markdown" as const),
    source: text,
    outputs: fc.constant<CellOutput[]>([]),
    executionCount: fc.constant(null),
    ...ran,
  });
  const cells = fc.uniqueArray(fc.tuple(fc.stringMatching(/^[a-zA-Z0-9_-]{1,64}$/), fc.oneof(codeCell, markdownCell)), {
    selector: ([id]) => id,
    maxLength: 12,
  });
  const metadata = fc.dictionary(fc.string(), fc.jsonValue(), { noNullPrototype: true });

  it("keeps ids, types, sources, outputs, counts and runs through export, JSON and import", () => {
    fc.assert(
      fc.property(cells, metadata, (generated, meta) => {
        const doc = new Y.Doc();
        generated.forEach(([id, data], i) => void insertCell(doc, i, { id, ...data }));
        metaOf(doc).set("ipynb", meta);

        const wire = JSON.parse(JSON.stringify(exportIpynb(doc)));
        const nb = IpynbSchema.parse(wire);
        expect(notebookFromIpynb(nb)).toEqual(readNotebook(doc));

        const copy = new Y.Doc();
        importIpynb(copy, nb);
        expect(readNotebook(copy)).toEqual(readNotebook(doc));
        expect(exportIpynb(copy)).toEqual(wire);
      }),
      { numRuns: 300 },
    );
  });
});
