/**
 * Shared notebooks benchmark: `npm run bench:notebook`.
 *
 * Editors — light y-websocket clients (bench/lib/yjs-client.ts) in this process, pinned to core 0 — type into
 * the first cell of a notebook, one character per update; every other editor of the notebook applies each
 * update, and receipt time − send time is its propagation latency (bench/lib/notebook-load.ts). DoctorPy
 * (`/collab/<id>`: token auth, room access, limits, updates stored in batches and, on 2 nodes, relayed through a
 * Redis stream) is measured beside a bare y-websocket server (bench/lib/bare-yjs.ts: the same protocol, in memory,
 * no auth, no persistence, Redis pub/sub between nodes) in the same run: both servers are up with their editors
 * connected, and the measured windows alternate between them. Servers run in child processes pinned to the last
 * core. Prints markdown tables and writes them to the `## bench:notebook` section of docs/BENCHMARKS.md.
 *
 * Scenarios (BENCH_NOTEBOOK_SCENARIOS, default `typing,saturation,cluster,many`):
 * - typing: BENCH_NOTEBOOK_EDITORS (50) editors in one notebook, each typing BENCH_NOTEBOOK_RATE (20) characters
 *   a second at a random phase, one node (DoctorPy on in-memory PGlite, or BENCH_DATABASE_URL);
 * - saturation: the same editors, closed loop: each keeps BENCH_NOTEBOOK_WINDOW (4) updates on their way (not yet
 *   received by every other editor) and types the next as soon as one lands, at most 95 % of DoctorPy's
 *   per-connection limit (NOTEBOOK_LIMITS.messagesPerSecond) a second, on both servers;
 * - cluster: typing on 2 nodes (editor j on node j mod 2), a private redis-server, DoctorPy on a fresh PostgreSQL
 *   database (BENCH_PG_ADMIN_URL);
 * - many: BENCH_NOTEBOOK_ROOMS (100) notebooks of BENCH_NOTEBOOK_ROOM_SIZE (5) editors, each typing
 *   BENCH_NOTEBOOK_MANY_RATE (2) characters a second, one node.
 * Each scenario measures BENCH_NOTEBOOK_ROUNDS (3) windows of BENCH_NOTEBOOK_SECONDS (5) per server, each after
 * BENCH_NOTEBOOK_WARMUP (1) s of typing.
 *
 * Other environment: BENCH_CPU_PROF=<dir> (V8 CPU profiles of the DoctorPy children, see bench/lib/cpuprofile.ts),
 * BENCH_SERVER_LOG=<level> with BENCH_CHILD_STDOUT=inherit, BENCH_PIN=0 (no CPU pinning), BENCH_STRICT=1 (exit 1
 * when a target fails), BENCH_NO_DOCS=1 (do not touch docs/BENCHMARKS.md).
 */
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { NOTEBOOK_LIMITS } from "../shared/notebook/protocol.ts";
import { pinning, pinSelf, runBench, type ServerChild, type ServerSpec } from "./lib/child.ts";
import { CpuMeter } from "./lib/cpu-meter.ts";
import { intEnv, killRedis, startNodes } from "./lib/nodes.ts";
import { NotebookLoad, type Window } from "./lib/notebook-load.ts";
import { type Kind, LABEL, logRow, type Measured, notebookReport, type Scenario } from "./lib/notebook-report.ts";
import { Samples, sleep } from "./lib/realtime.ts";
import { describeMachine, machineFacts, publishSection } from "./lib/report.ts";

const ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "..");
const DOCS = resolve(ROOT, "docs/BENCHMARKS.md");
const HEADING = "## bench:notebook";

const cfg = {
  editors: intEnv("BENCH_NOTEBOOK_EDITORS", 50, 2),
  rate: intEnv("BENCH_NOTEBOOK_RATE", 20, 1),
  window: intEnv("BENCH_NOTEBOOK_WINDOW", 4, 1),
  rooms: intEnv("BENCH_NOTEBOOK_ROOMS", 100, 1),
  roomSize: intEnv("BENCH_NOTEBOOK_ROOM_SIZE", 5, 2),
  manyRate: intEnv("BENCH_NOTEBOOK_MANY_RATE", 2, 1),
  seconds: intEnv("BENCH_NOTEBOOK_SECONDS", 5, 1),
  rounds: intEnv("BENCH_NOTEBOOK_ROUNDS", 3, 1),
  warmup: intEnv("BENCH_NOTEBOOK_WARMUP", 1, 0),
};
/** closed-loop cap per editor: under DoctorPy's limit, which closes a connection that exceeds it */
const MAX_PER_EDITOR = Math.floor(0.95 * NOTEBOOK_LIMITS.messagesPerSecond);
if (cfg.rate > MAX_PER_EDITOR || cfg.manyRate > MAX_PER_EDITOR)
  throw new Error(`typing rates must stay under ${MAX_PER_EDITOR}/s (DoctorPy's per-connection limit)`);
const SCENARIOS: Scenario[] = ["typing", "saturation", "cluster", "many"];
const selected = new Set((process.env.BENCH_NOTEBOOK_SCENARIOS ?? SCENARIOS.join(",")).split(",").map((s) => s.trim()));
for (const s of selected) if (!SCENARIOS.includes(s as Scenario)) throw new Error(`unknown scenario ${s}`);
const runs = (s: Scenario) => selected.has(s);
const cpuProfDir = process.env.BENCH_CPU_PROF ? resolve(process.env.BENCH_CPU_PROF) : undefined;
const serverLog = (process.env.BENCH_SERVER_LOG ?? "silent") as ServerSpec["logLevel"];

const windowS = cfg.rounds * 2 * (cfg.warmup + cfg.seconds + 3);
const budgetMs =
  1000 *
  (60 +
    (runs("typing") || runs("saturation") ? 60 + windowS * (Number(runs("typing")) + Number(runs("saturation"))) : 0) +
    (runs("cluster") ? 90 + windowS : 0) +
    (runs("many") ? 90 + windowS + (cfg.rooms * cfg.roomSize) / 20 : 0));
const childTtlMs = budgetMs + 10_000;

const log = (line: string) => process.stderr.write(`${line}\n`);

// ---------------------------------------------------------------------------------------------------------------
// Servers and their editors

interface Side {
  kind: Kind;
  nodes: ServerChild[];
  load?: NotebookLoad;
  error?: string;
  stop(): Promise<void>;
}

/** One node, or two sharing a private redis-server (and, for DoctorPy, a fresh PostgreSQL database). */
async function startSide(kind: Kind, count: number): Promise<Side> {
  const spec: ServerSpec = { server: kind, logLevel: serverLog, ttlMs: childTtlMs, env: {} };
  if (kind === "doctorpy" && cpuProfDir) spec.cpuProfDir = cpuProfDir;
  const { nodes, stop } = await startNodes(spec, count);
  const side: Side = {
    kind,
    nodes,
    async stop() {
      side.load?.close();
      await stop();
    },
  };
  return side;
}

const message = (err: unknown) => (err instanceof Error ? (err.message.split("\n")[0] ?? "failed") : String(err));

/**
 * Both servers with `notebooks` × `perNotebook` editors connected to each, then `run` on them; everything is
 * stopped after, whatever happens.
 */
async function withSides<T>(
  count: number,
  notebooks: number,
  perNotebook: number,
  run: (sides: Side[]) => Promise<T>,
): Promise<T> {
  const sides: Side[] = [];
  try {
    for (const kind of ["bare-yjs", "doctorpy"] as const) {
      const side = await startSide(kind, count);
      sides.push(side);
      try {
        side.load = await NotebookLoad.open(side.nodes, notebooks, perNotebook, kind === "doctorpy");
        const s = side.load.setup;
        log(
          `  ${LABEL[kind]}: fixtures ${(s.fixturesMs / 1000).toFixed(1)} s, ${notebooks * perNotebook} editors ` +
            `synced in ${(s.connectMs / 1000).toFixed(1)} s, first cells everywhere in ${s.cellMs.toFixed(0)} ms`,
        );
      } catch (err) {
        side.error = message(err);
        log(`  ${LABEL[kind]}: ${side.error}`);
      }
    }
    return await run(sides);
  } finally {
    await Promise.all(sides.map((s) => s.stop()));
  }
}

/**
 * `rounds` windows per server, alternating between them: each server's editors type (`start`) for the warm-up,
 * then a measured window, then stop, and everything typed drains (every update to every other editor, or 10 s).
 */
async function measure(
  scenario: Scenario,
  sides: Side[],
  perSecond: number | null,
  start: (load: NotebookLoad) => void,
): Promise<Measured[]> {
  const state = sides.map((side) => ({
    side,
    meter: new CpuMeter(side.nodes),
    pool: new Samples(),
    far: new Samples(),
    windows: [] as Window[],
    error: side.error,
  }));
  for (let round = 0; round < cfg.rounds; round++) {
    for (const s of state) {
      const load = s.side.load;
      if (s.error || !load) continue;
      try {
        start(load);
        await sleep(cfg.warmup * 1000);
        await s.meter.start();
        const w = load.measure(cfg.seconds, s.pool, s.far);
        await sleep(cfg.seconds * 1000);
        w.close();
        await s.meter.stop();
        load.stop();
        s.windows.push(w);
        await load.drain(10_000);
        if (load.diverged() > 0) throw new Error(`${load.diverged()} notebooks differ between their editors`);
        const closed = load.closedCodes();
        if (closed.length > 0)
          throw new Error(`${closed.length} editors were disconnected (codes ${[...new Set(closed)]})`);
      } catch (err) {
        load.stop();
        s.error = message(err);
        log(`    ${LABEL[s.side.kind]}: ${s.error}`);
      }
    }
  }
  return state.map(({ side, meter, pool, far, windows, error }) => {
    const load = side.load;
    const sum = (f: (w: Window) => number) => windows.reduce((n, w) => n + f(w), 0);
    const seconds = sum((w) => w.seconds);
    const row: Measured = {
      scenario,
      kind: side.kind,
      nodes: side.nodes.length,
      notebooks: load?.notebooks ?? 0,
      editors: load?.editors.length ?? 0,
      perSecond,
      seconds,
      sent: sum((w) => w.sent),
      expected: sum((w) => w.expected),
      received: sum((w) => w.received),
      complete: sum((w) => w.complete),
      deliveries: sum((w) => w.deliveriesInWindow),
      unknown: load?.unknown ?? 0,
      p50: pool.percentile(50),
      p90: pool.percentile(90),
      p99: pool.percentile(99),
      max: pool.max(),
      farP50: far.percentile(50),
      farP99: far.percentile(99),
      windowP99: windows.map((w) => w.samples.percentile(99)),
      ...(windows.length > 0
        ? meter.report()
        : {
            server: [],
            self: Number.NaN,
            serverWait: [],
            selfWait: Number.NaN,
            steal: Number.NaN,
            selfLagP99: Number.NaN,
            selfLagMax: Number.NaN,
          }),
      ...(error ? { error } : {}),
    };
    logRow(row);
    return row;
  });
}

// ---------------------------------------------------------------------------------------------------------------

function clusterUnavailable(): string | null {
  const redis = spawnSync("redis-server", ["--version"], { stdio: "ignore" });
  return redis.error || redis.status !== 0 ? "redis-server is not on the PATH" : null;
}

async function run(): Promise<number> {
  const machine = machineFacts();
  const pinned = pinSelf();
  log(`bench:notebook on ${describeMachine(machine)}; load average ${machine.load.toFixed(2)}`);
  log(
    pinned && pinning
      ? `servers pinned to CPU ${pinning.serverCpu}, editors (this process) to CPU ${pinning.loadCpu}`
      : "no CPU pinning",
  );
  log(`time budget ${Math.round(budgetMs / 1000)} s`);
  const started = performance.now();
  const rows: Measured[] = [];
  const skipped: string[] = [];

  if (runs("typing") || runs("saturation")) {
    log(`1 node, one notebook of ${cfg.editors} editors:`);
    await withSides(1, 1, cfg.editors, async (sides) => {
      if (runs("typing")) {
        log(`  typing, ${cfg.rate} characters/s each ...`);
        rows.push(...(await measure("typing", sides, cfg.rate * cfg.editors, (l) => l.paced(cfg.rate))));
      }
      if (runs("saturation")) {
        log(`  saturation, closed loop (${cfg.window} on their way, at most ${MAX_PER_EDITOR}/s each) ...`);
        rows.push(...(await measure("saturation", sides, null, (l) => l.closedLoop(cfg.window, MAX_PER_EDITOR))));
      }
    });
  }
  if (runs("cluster")) {
    const why = clusterUnavailable();
    if (why) skipped.push(`cluster: ${why}`);
    else {
      log(`2 nodes, one notebook of ${cfg.editors} editors (editor j on node j mod 2):`);
      await withSides(2, 1, cfg.editors, async (sides) => {
        log(`  typing, ${cfg.rate} characters/s each ...`);
        rows.push(...(await measure("cluster", sides, cfg.rate * cfg.editors, (l) => l.paced(cfg.rate))));
      });
    }
  }
  if (runs("many")) {
    log(`1 node, ${cfg.rooms} notebooks of ${cfg.roomSize} editors:`);
    await withSides(1, cfg.rooms, cfg.roomSize, async (sides) => {
      log(`  typing, ${cfg.manyRate} characters/s each ...`);
      const total = cfg.manyRate * cfg.rooms * cfg.roomSize;
      rows.push(...(await measure("many", sides, total, (l) => l.paced(cfg.manyRate))));
    });
  }
  const elapsedS = (performance.now() - started) / 1000;

  const report = notebookReport(rows, {
    cfg: { ...cfg, maxPerEditor: MAX_PER_EDITOR },
    pinning: pinned ? pinning : null,
    machine,
    elapsedS,
    skipped,
  });
  process.stdout.write(`\n${HEADING}\n\n${report.tables}\n`);
  if (process.env.BENCH_NO_DOCS !== "1") {
    await publishSection(DOCS, HEADING, report.body, machine);
    log(`wrote the "${HEADING}" section of ${DOCS}`);
  }
  if (cpuProfDir) log(`CPU profiles of the DoctorPy children: ${cpuProfDir}`);
  return report.failed && process.env.BENCH_STRICT === "1" ? 1 : 0;
}

runBench("bench:notebook", budgetMs, run, { cleanup: killRedis, exitAtOnce: true });
