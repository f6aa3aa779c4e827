/**
 * Runs notebook code cells with Pyodide and turns what they do into {@link CellOutput}s.
 *
 * Environment-neutral: the browser runs it in a Web Worker (`client/src/lib/notebook/python-worker.ts`), tests
 * run it in Node. The caller loads Pyodide and hands it over; this module never imports the runtime itself.
 *
 * Stopping a run: Python running on a thread blocks that thread's event loop, so a timer on the same thread
 * cannot fire while a cell computes. The time limit and the stop button therefore live on ANOTHER thread (the
 * page that owns the worker) and reach Python through Pyodide's interrupt buffer, a shared Int32Array into
 * which writing {@link SIGINT} raises KeyboardInterrupt at one of the next bytecode checks.
 * {@link createInterruptBuffer} and {@link interruptAfter} are that other side.
 */
import type { PyodideAPI } from "pyodide";
import type { PyCallable, PyProxy, PyProxyWithGet } from "pyodide/ffi";
import type { CellOutput } from "./model.ts";

/** What a run may print, over every stream, before the rest is dropped (the result repr has its own bound). */
export const PYTHON_OUTPUT_LIMIT = 100_000;
/** The signal number that Pyodide turns into KeyboardInterrupt. */
export const SIGINT = 2;

/** The part of a loaded Pyodide that a session uses. */
export type PythonRuntime = Pick<
  PyodideAPI,
  "runPython" | "setStdin" | "setStdout" | "setStderr" | "setInterruptBuffer"
>;

export interface RunOptions {
  /**
   * Pyodide's interrupt buffer for this run; another thread writes {@link SIGINT} into slot 0 to stop it (see
   * {@link interruptAfter}). Detached and cleared when the run ends. Use a new buffer for every run: the other
   * thread may still write one more SIGINT before it learns that the run is over.
   */
  interruptBuffer?: Int32Array;
}

/** One notebook's Python: cells share one namespace until {@link PythonSession.reset}. */
export interface PythonSession {
  /** Runs one cell's source; never throws, a failure is an `error` output. Runs are queued, one at a time. */
  run(source: string, options?: RunOptions): Promise<CellOutput[]>;
  /** Forgets every variable (like restarting a kernel, without reloading Pyodide). */
  reset(): Promise<void>;
  /** Releases the session's Python objects; the session is unusable afterwards. */
  dispose(): void;
}

export interface PythonSessionOptions {
  /** Characters of stdout + stderr kept per run; default {@link PYTHON_OUTPUT_LIMIT}. */
  maxOutputChars?: number;
}

/** Messages the page sends to the Python worker. */
export type PythonWorkerRequest =
  | { kind: "run"; id: string; source: string; interruptBuffer?: Int32Array }
  | { kind: "reset" };

/** Messages the Python worker sends back. */
export type PythonWorkerReply =
  | { kind: "ready"; version: string }
  | { kind: "loadFailed"; message: string }
  | { kind: "outputs"; id: string; outputs: CellOutput[] };

/** A fresh interrupt buffer, or undefined where SharedArrayBuffer is unavailable (a page not cross-origin isolated). */
export function createInterruptBuffer(): Int32Array | undefined {
  return typeof SharedArrayBuffer === "function" ? new Int32Array(new SharedArrayBuffer(4)) : undefined;
}

/**
 * Stops the run that uses `buffer` (KeyboardInterrupt) after `delayMs`, 0 for the stop button, from a thread
 * other than Python's. SIGINT is written again every `everyMs` until the returned function is called (call it
 * when the run's outputs arrive): Pyodide reads the buffer and then zeroes it in two steps, so a single write
 * that lands between them is lost, and a write that lands outside the cell's own code is ignored.
 */
export function interruptAfter(buffer: Int32Array, delayMs: number, everyMs = 100): () => void {
  let repeat: ReturnType<typeof setInterval> | undefined;
  const signal = () => Atomics.store(buffer, 0, SIGINT);
  const first = setTimeout(() => {
    signal();
    repeat = setInterval(signal, everyMs);
  }, delayMs);
  return () => {
    clearTimeout(first);
    clearInterval(repeat);
  };
}

/**
 * Python side of a session, run once in a private dict. `run_cell` returns JSON, or for a cell with top-level
 * `await` a coroutine resolving to JSON. Exceptions are caught inside Python.
 *
 * SIGINT gets a handler of ours: Pyodide delivers a signal wherever Python happens to run next, and while a
 * cell awaits that is the event loop's own code, where a KeyboardInterrupt would escape every caller and leave
 * the run unfinished. So the handler raises KeyboardInterrupt only when a cell's frame is on the stack; else it
 * cancels the awaiting cell's task once (reported as KeyboardInterrupt), or ignores the signal: the run is
 * starting or ending, and the controller writes SIGINT again while the run lasts.
 *
 * Tracebacks start at the first frame of a cell, so Pyodide's own frames never show; every cell's source is put
 * into linecache under its `<cell-N>` name so that tracebacks show the user's lines, also for functions defined
 * in earlier cells.
 */
const PYTHON_SIDE = `
import ast, asyncio, inspect, json, linecache, signal, sys, traceback
from pyodide.code import CodeRunner

_ns = {}
_runs = 0
_max_lines = 200
_task = None
_interrupted = False

def _on_sigint(signum, frame):
    global _interrupted
    while frame is not None:
        if frame.f_code.co_filename.startswith("<cell-"):
            raise KeyboardInterrupt
        frame = frame.f_back
    if _task is not None and not _interrupted:
        _interrupted = True
        _task.cancel()

def reset():
    global _ns
    _ns = {"__name__": "__main__"}

def _clip(text, limit):
    return text if len(text) <= limit else text[:limit] + " … (truncated)"

def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass

def _error(exc, limit):
    if isinstance(exc, SyntaxError) and exc.text is None and exc.filename and exc.lineno:
        exc.text = linecache.getline(exc.filename, exc.lineno) or None
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell-"):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    lines = [line.rstrip() for line in text.rstrip().split("\\n")]
    if len(lines) > _max_lines:
        lines = lines[: _max_lines // 2] + ["    ... (traceback truncated)"] + lines[-_max_lines // 2 :]
    return json.dumps({"error": {"ename": type(exc).__name__, "evalue": _clip(str(exc), limit), "traceback": lines}})

def _result(value, limit):
    try:
        text = None if value is None else _clip(repr(value), limit)
    except BaseException as exc:
        return _error(exc, limit)
    return json.dumps({"result": text})

async def _finish(runner, limit):
    global _task, _interrupted
    _task, _interrupted = asyncio.current_task(), False
    try:
        value = await runner.run_async(_ns)
    except asyncio.CancelledError as exc:
        if not _interrupted:
            return _error(exc, limit)
        return _error(KeyboardInterrupt().with_traceback(exc.__traceback__), limit)
    except BaseException as exc:
        return _error(exc, limit)
    finally:
        _task = None
        _flush()
    return _result(value, limit)

def run_cell(source, limit):
    global _runs
    _runs += 1
    filename = f"<cell-{_runs}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        runner = CodeRunner(source, filename=filename, flags=flags, dedent=False).compile()
        if runner.code is not None and runner.code.co_flags & inspect.CO_COROUTINE:
            return _finish(runner, limit)
        value = runner.run(_ns)
    except BaseException as exc:
        return _error(exc, limit)
    finally:
        _flush()
    return _result(value, limit)

reset()
`;

interface RunReply {
  result?: string | null;
  error?: { ename: string; evalue: string; traceback: string[] };
}

/** Collects one run's stream writes: consecutive writes to one stream merge, the total is bounded. */
class OutputCollector {
  readonly outputs: CellOutput[] = [];
  private used = 0;
  private truncated = false;
  private readonly decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };

  constructor(private readonly max: number) {}

  /** An Emscripten writer for Pyodide's setStdout/setStderr; bytes may split a UTF-8 character. */
  writer(name: "stdout" | "stderr") {
    return {
      isatty: false,
      write: (bytes: Uint8Array): number => {
        this.add(name, this.decoders[name].decode(bytes, { stream: true }));
        return bytes.length;
      },
    };
  }

  /** Flushes a character left incomplete at the end of a stream. */
  finish(): void {
    for (const name of ["stdout", "stderr"] as const) this.add(name, this.decoders[name].decode());
  }

  private add(name: "stdout" | "stderr", text: string): void {
    if (this.truncated || text === "") return;
    if (this.used + text.length > this.max) {
      text = `${text.slice(0, this.max - this.used)}\n[output truncated: more than ${this.max} characters]\n`;
      this.truncated = true;
    }
    this.used += text.length;
    const last = this.outputs.at(-1);
    if (last?.type === "stream" && last.name === name) last.text += text;
    else this.outputs.push({ type: "stream", name, text });
  }
}

/** Turns a failure that escaped the Python side's own handling (a PythonError, say) into an error output. */
function errorOutput(err: unknown): CellOutput {
  const type = (err as { type?: unknown }).type;
  const message = err instanceof Error ? err.message : String(err);
  const lastLine = message.trimEnd().split("\n").at(-1) ?? "";
  const ename = typeof type === "string" ? type : err instanceof Error ? err.name : "Error";
  const evalue = lastLine.startsWith(`${ename}:`) ? lastLine.slice(ename.length + 1).trim() : lastLine;
  return { type: "error", ename, evalue, traceback: [lastLine] };
}

/** A Python coroutine as Pyodide hands it to JS: awaitable, and ours to destroy. */
type Coroutine = PyProxy & PromiseLike<unknown>;

function isAwaitable(value: unknown): value is Coroutine {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

async function settle(coroutine: Coroutine): Promise<unknown> {
  try {
    return await coroutine;
  } finally {
    coroutine.destroy();
  }
}

/**
 * Starts a session on a loaded Pyodide. Sessions on one Pyodide must not run at the same time (stdout, stderr
 * and the interrupt buffer are global to the runtime); one worker holds one session.
 */
export function createPythonSession(pyodide: PythonRuntime, options: PythonSessionOptions = {}): PythonSession {
  const max = options.maxOutputChars ?? PYTHON_OUTPUT_LIMIT;
  const scope = pyodide.runPython("dict()") as PyProxyWithGet;
  pyodide.runPython(PYTHON_SIDE, { globals: scope });
  const runCell = scope.get("run_cell") as PyCallable;
  const resetNamespace = scope.get("reset") as PyCallable;
  let queue: Promise<unknown> = Promise.resolve();

  const enqueue = <T>(task: () => Promise<T>): Promise<T> => {
    const next = queue.then(task, task);
    queue = next.catch(() => undefined);
    return next;
  };

  async function runNow(source: string, runOptions: RunOptions): Promise<CellOutput[]> {
    const collector = new OutputCollector(max);
    const buffer = runOptions.interruptBuffer;
    // No one can type into a cell's stdin: input() gets end-of-file (EOFError) instead of blocking or failing.
    pyodide.setStdin({ stdin: () => null });
    pyodide.setStdout(collector.writer("stdout"));
    pyodide.setStderr(collector.writer("stderr"));
    if (buffer) pyodide.setInterruptBuffer(buffer);
    let reply: RunReply | undefined;
    let failure: CellOutput | undefined;
    try {
      const value: unknown = runCell(source, max);
      reply = JSON.parse(String(isAwaitable(value) ? await settle(value) : value)) as RunReply;
    } catch (err) {
      failure = errorOutput(err);
    } finally {
      if (buffer) {
        // Pyodide documents `undefined` as "no interrupt buffer"; its typing does not allow it.
        pyodide.setInterruptBuffer(undefined as unknown as Int32Array);
        Atomics.store(buffer, 0, 0);
      }
      // Back to Pyodide's defaults (it cannot tell us a previous handler to restore).
      pyodide.setStdin();
      pyodide.setStdout();
      pyodide.setStderr();
      collector.finish();
    }
    const outputs = collector.outputs;
    if (failure) outputs.push(failure);
    else if (reply?.error) outputs.push({ type: "error", ...reply.error });
    else if (typeof reply?.result === "string") outputs.push({ type: "result", text: reply.result });
    return outputs;
  }

  return {
    run: (source, runOptions = {}) => enqueue(() => runNow(source, runOptions)),
    reset: () =>
      enqueue(async () => {
        resetNamespace();
      }),
    dispose() {
      runCell.destroy();
      resetNamespace.destroy();
      scope.destroy();
    },
  };
}
