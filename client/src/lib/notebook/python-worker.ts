/**
 * The notebook's Python, in a Web Worker: loads Pyodide from our own origin (the build copies the runtime to
 * `/pyodide/`) and adapts messages to `shared/notebook/python.ts`. One worker is one notebook session.
 *
 * The page owns the time limit and the stop button: it writes SIGINT into the run's interrupt buffer (see
 * `interruptAfter` and `interrupt`); this thread is busy while Python runs and cannot time itself.
 */
import { loadPyodide } from "pyodide";
import type { CellOutput } from "../../../../shared/notebook/model.ts";
import {
  createPythonSession,
  type PythonSession,
  type PythonWorkerReply,
  type PythonWorkerRequest,
} from "../../../../shared/notebook/python.ts";

/** The worker global, declared locally: the client's tsconfig has the DOM lib, not WebWorker. */
declare const self: {
  postMessage(message: PythonWorkerReply): void;
  addEventListener(type: "message", listener: (event: MessageEvent<PythonWorkerRequest>) => void): void;
};

const session: Promise<PythonSession> = loadPyodide({ indexURL: "/pyodide/" }).then((pyodide) => {
  const python = createPythonSession(pyodide);
  self.postMessage({ kind: "ready", version: pyodide.version });
  return python;
});
session.catch((err: unknown) => self.postMessage({ kind: "loadFailed", message: String(err) }));

async function handle(request: PythonWorkerRequest): Promise<void> {
  let python: PythonSession;
  try {
    python = await session;
  } catch (err) {
    if (request.kind !== "run") return;
    const failed: CellOutput = { type: "error", ename: "LoadError", evalue: String(err), traceback: [] };
    self.postMessage({ kind: "outputs", id: request.id, outputs: [failed] });
    return;
  }
  if (request.kind === "reset") return python.reset();
  const outputs = await python.run(request.source, { interruptBuffer: request.interruptBuffer });
  self.postMessage({ kind: "outputs", id: request.id, outputs });
}

self.addEventListener("message", (event) => {
  void handle(event.data);
});
