import { spawnSync } from "node:child_process";

export interface PythonCase {
  name: string;
  code: string;
}

export interface PythonResult {
  name: string;
  ok: boolean;
  /** `ExceptionType: message` when the code raised */
  error?: string;
}

/**
 * Runs each snippet with CPython (`python3`) in a fresh module namespace and a fresh temporary working directory,
 * with a 5 s alarm each; output is swallowed. One interpreter for all the cases keeps a course check fast.
 */
const DRIVER = `
import contextlib, io, json, os, signal, sys, tempfile
cases = json.load(sys.stdin)
results = []
home = os.getcwd()
def on_alarm(*_):
    raise TimeoutError("took longer than 5 s")
signal.signal(signal.SIGALRM, on_alarm)
for case in cases:
    buf = io.StringIO()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        signal.alarm(5)
        try:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                exec(compile(case["code"], case["name"], "exec"), {"__name__": "__main__"})
            results.append({"name": case["name"], "ok": True})
        except BaseException as e:
            results.append({"name": case["name"], "ok": False, "error": f"{type(e).__name__}: {e}"})
        finally:
            signal.alarm(0)
            os.chdir(home)
sys.stdout.write(json.dumps(results))
`;

export function runPython(cases: PythonCase[]): PythonResult[] {
  const run = spawnSync("python3", ["-c", DRIVER], {
    input: JSON.stringify(cases),
    encoding: "utf8",
    timeout: 10_000 + cases.length * 6_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (run.error) throw run.error;
  if (run.status !== 0) throw new Error(`python3 exited with ${run.status}: ${run.stderr}`);
  return JSON.parse(run.stdout) as PythonResult[];
}

/** Only checks that each snippet is valid Python (it is not run). */
export function compilePython(cases: PythonCase[]): PythonResult[] {
  return runPython(
    cases.map((c) => ({
      name: c.name,
      code: `compile(${JSON.stringify(c.code)}, ${JSON.stringify(c.name)}, "exec")\n`,
    })),
  );
}
