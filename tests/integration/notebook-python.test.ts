/**
 * Running notebook cells with Pyodide (from node_modules, on this thread) and sharing the outputs through Yjs:
 * every run is written into one Y.Doc with `setOutputs`, and assertions read a second Y.Doc kept in sync with
 * state-vector updates, as a collaborator's browser would.
 *
 * Interrupts: Pyodide honours its interrupt buffer on Node's main thread, but a timer on this thread cannot
 * fire while Python keeps it busy, so the time limit of a busy loop is enforced by a watchdog thread, the role
 * the page plays for the browser's Python worker. A cell that awaits gives the event loop back, so there the
 * same-thread `interruptAfter` works too.
 */
import { Worker } from "node:worker_threads";
import { loadPyodide } from "pyodide";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as Y from "yjs";
import { type CellData, cellsOf, findCell, insertCell, readCell, setOutputs } from "../../shared/notebook/model.ts";
import {
  createInterruptBuffer,
  createPythonSession,
  interruptAfter,
  PYTHON_OUTPUT_LIMIT,
  type PythonSession,
  type RunOptions,
  SIGINT,
} from "../../shared/notebook/python.ts";

const ranBy = { userId: "u-ada", name: "Ada" };
const doc = new Y.Doc();
const replica = new Y.Doc();
let python: PythonSession;

beforeAll(async () => {
  python = createPythonSession(await loadPyodide());
}, 60_000);

afterAll(() => {
  python?.dispose();
});

/** Adds a code cell, runs it, writes its outputs, syncs the replica and returns the cell as the replica sees it. */
async function run(source: string, options?: RunOptions): Promise<CellData> {
  const cell = insertCell(doc, cellsOf(doc).length, { type: "code", source });
  const { id, source: code } = readCell(cell);
  const outputs = await python.run(code, options);
  expect(setOutputs(doc, id, outputs, ranBy)).toBe(true);
  Y.applyUpdate(replica, Y.encodeStateAsUpdate(doc, Y.encodeStateVector(replica)));
  const shared = findCell(replica, id);
  if (!shared) throw new Error(`cell ${id} missing from the replica`);
  return readCell(shared);
}

/**
 * Another thread that writes SIGINT into `buffer` after `ms` and every 50 ms after that (as `interruptAfter`
 * does) until stopped. It reports "armed" before the caller starts Python: a worker that is still starting
 * needs this thread's event loop, which a busy cell blocks. If Python ignored the interrupt, the test thread
 * would stay blocked where vitest's timeout cannot fire; after 10 s the watchdog kills the test process instead.
 */
async function watchdog(buffer: Int32Array, ms: number): Promise<{ stop(): Promise<void> }> {
  const control = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `const { parentPort, workerData } = require("node:worker_threads");
     const { buffer, control, ms, signal } = workerData;
     const giveUp = Date.now() + ms + 10000;
     parentPort.postMessage("armed");
     for (let wait = ms; Atomics.wait(control, 0, 0, wait) === "timed-out"; wait = 50) {
       Atomics.store(buffer, 0, signal);
       if (Date.now() > giveUp) {
         require("node:fs").writeSync(2, "notebook-python: the interrupt was ignored, killing the test process\\n");
         process.kill(process.pid, "SIGKILL");
       }
     }`,
    { eval: true, workerData: { buffer, control, ms, signal: SIGINT } },
  );
  const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
  await new Promise((resolve) => worker.once("message", resolve));
  return {
    stop() {
      Atomics.store(control, 0, 1);
      Atomics.notify(control, 0);
      return exited;
    },
  };
}

describe("running notebook cells with Pyodide", () => {
  it("shares stdout and the repr of the last expression, with who ran it", async () => {
    const cell = await run('print("hello")\nprint("world")\n1 + 1');
    expect(cell.outputs).toEqual([
      { type: "stream", name: "stdout", text: "hello\nworld\n" },
      { type: "result", text: "2" },
    ]);
    expect(cell.ranBy).toEqual(ranBy);
    expect(cell.executionCount).toBeGreaterThan(0);
    expect(cell.ranAt).not.toBeNull();
  });

  it("shows a string result as its quoted repr", async () => {
    expect((await run('"hi"')).outputs).toEqual([{ type: "result", text: "'hi'" }]);
    expect((await run('"it\'s"')).outputs).toEqual([{ type: "result", text: `"it's"` }]);
  });

  it("gives no result for None, a statement or a trailing semicolon", async () => {
    expect((await run("None")).outputs).toEqual([]);
    expect((await run("x = 41")).outputs).toEqual([]);
    expect((await run("x + 1;")).outputs).toEqual([]);
  });

  it("turns an exception into an error whose traceback shows the user's line, not Pyodide's", async () => {
    const cell = await run('print("before")\n1 / 0\nprint("after")');
    expect(cell.outputs[0]).toEqual({ type: "stream", name: "stdout", text: "before\n" });
    const error = cell.outputs[1];
    expect(error).toMatchObject({ type: "error", ename: "ZeroDivisionError", evalue: "division by zero" });
    if (error?.type !== "error") throw new Error("expected an error output");
    expect(error.traceback[0]).toBe("Traceback (most recent call last):");
    expect(error.traceback).toContainEqual(expect.stringMatching(/^ {2}File "<cell-\d+>", line 2, in <module>$/));
    expect(error.traceback).toContain("    1 / 0");
    expect(error.traceback.at(-1)).toBe("ZeroDivisionError: division by zero");
    expect(error.traceback.join("\n")).not.toMatch(/_pyodide|python314\.zip|CodeRunner/);
    expect(cell.outputs).toHaveLength(2);
  });

  it("shows a syntax error with the offending line", async () => {
    const [error] = (await run("total = (1 +")).outputs;
    expect(error).toMatchObject({ type: "error", ename: "SyntaxError" });
    if (error?.type !== "error") throw new Error("expected an error output");
    expect(error.traceback).toContain("    total = (1 +");
    expect(error.traceback.at(-1)).toMatch(/^SyntaxError: /);
  });

  it("keeps variables and functions from one cell to the next", async () => {
    await run("def half(n):\n    return n / 0 if n < 0 else n // 2\n\ncount = 10");
    expect((await run("half(count)")).outputs).toEqual([{ type: "result", text: "5" }]);
    const [error] = (await run("half(-1)")).outputs;
    if (error?.type !== "error") throw new Error("expected an error output");
    // The frame inside the earlier cell shows that cell's source line.
    expect(error.traceback).toContain("    return n / 0 if n < 0 else n // 2");
  });

  it("captures stderr, merging consecutive writes to one stream in order", async () => {
    // stdout is line-buffered as in a terminal: a partial line waits for its newline or the end of the cell.
    const cell = await run('import sys\nprint("a")\nprint("b")\nprint("oops", file=sys.stderr)\nprint("c", end="")');
    expect(cell.outputs).toEqual([
      { type: "stream", name: "stdout", text: "a\nb\n" },
      { type: "stream", name: "stderr", text: "oops\n" },
      { type: "stream", name: "stdout", text: "c" },
    ]);
  });

  it("stops a busy loop at its time limit with a KeyboardInterrupt, and the session goes on", async () => {
    await run("kept = 'still here'");
    const buffer = createInterruptBuffer();
    if (!buffer) throw new Error("SharedArrayBuffer is missing");
    const limit = await watchdog(buffer, 500);
    const started = performance.now();
    const cell = await run("while True:\n    pass", { interruptBuffer: buffer });
    const elapsed = performance.now() - started;
    await limit.stop();
    expect(elapsed).toBeGreaterThanOrEqual(450);
    expect(elapsed).toBeLessThan(10_000);
    const [error] = cell.outputs;
    expect(error).toMatchObject({ type: "error", ename: "KeyboardInterrupt" });
    if (error?.type !== "error") throw new Error("expected an error output");
    expect(error.traceback).toContainEqual(expect.stringMatching(/^ {2}File "<cell-\d+>", line [12], in <module>$/));
    expect(buffer[0]).toBe(0);
    expect((await run("kept")).outputs).toEqual([{ type: "result", text: "'still here'" }]);
  });

  it("stops an awaiting cell from the same thread, and a late stop does not reach the next run", async () => {
    const buffer = createInterruptBuffer();
    if (!buffer) throw new Error("SharedArrayBuffer is missing");
    const cancel = interruptAfter(buffer, 200);
    const cell = await run("import asyncio\nwhile True:\n    await asyncio.sleep(0.01)", { interruptBuffer: buffer });
    cancel();
    expect(cell.outputs).toEqual([expect.objectContaining({ type: "error", ename: "KeyboardInterrupt" })]);
    Atomics.store(buffer, 0, SIGINT);
    expect((await run("sum(range(100_000))")).outputs).toEqual([{ type: "result", text: "4999950000" }]);
  });

  it("bounds the captured output and says so", async () => {
    const cell = await run(
      `import sys\nfor _ in range(300):\n    print("x" * 999)\nprint("late", file=sys.stderr)\n"done"`,
    );
    expect(cell.outputs).toHaveLength(2);
    const [stream, result] = cell.outputs;
    if (stream?.type !== "stream") throw new Error("expected a stream output");
    expect(stream.name).toBe("stdout");
    expect(stream.text.startsWith("x".repeat(999))).toBe(true);
    expect(stream.text).toMatch(/\[output truncated: more than 100000 characters\]\n$/);
    expect(stream.text.length).toBeLessThan(PYTHON_OUTPUT_LIMIT + 100);
    expect(result).toEqual({ type: "result", text: "'done'" });
  });

  it("answers input() with end-of-file instead of waiting", async () => {
    const [error] = (await run('name = input("Your name? ")')).outputs.filter((o) => o.type === "error");
    expect(error).toMatchObject({ type: "error", ename: "EOFError" });
  });

  it("forgets every variable on reset", async () => {
    await run("forgotten = 1");
    await python.reset();
    const [error] = (await run("forgotten")).outputs;
    expect(error).toMatchObject({ type: "error", ename: "NameError" });
  });
});
