/**
 * The tables and the docs section of bench/notebook.ts: one row per scenario and server, then DoctorPy beside
 * bare with the ratios and the targets.
 */
import type { CpuReport } from "./cpu-meter.ts";
import { describeMachine, type Machine } from "./report.ts";

export type Kind = "bare-yjs" | "doctorpy";
export const LABEL: Record<Kind, string> = { "bare-yjs": "bare y-websocket", doctorpy: "DoctorPy" };
export type Scenario = "typing" | "saturation" | "cluster" | "many";

/** p99 targets (DoctorPy, ms) and the saturation throughput ratio (DoctorPy ÷ bare) */
export const TARGET = { typingP99: 25, clusterP99: 50, saturationRatio: 0.5 } as const;
/** load-generator CPU + run-queue wait (% of its core) from which it, not the server, sets the pace */
const GENERATOR_BUSY = 85;

export interface Measured extends CpuReport {
  scenario: Scenario;
  kind: Kind;
  nodes: number;
  notebooks: number;
  editors: number;
  /** open-loop target, updates/s in total (null: closed loop) */
  perSecond: number | null;
  /** measured seconds (every window of the row) */
  seconds: number;
  sent: number;
  /** sent × the other editors of the notebook */
  expected: number;
  received: number;
  /** updates received by every other editor */
  complete: number;
  /** receipts while the windows were open */
  deliveries: number;
  /** receipts of updates no editor here sent */
  unknown: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** receipts on another node than the sender's (NaN on one node) */
  farP50: number;
  farP99: number;
  windowP99: number[];
  error?: string;
}

const f0 = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "n/a");
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "n/a");
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : "n/a");
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

const updatesPerS = (r: Measured) => r.complete / r.seconds;
/** server CPU time (every node) per update sent, µs */
const cpuPerUpdate = (r: Measured) => (sum(r.server) * 10_000 * r.seconds) / r.sent;
/** updates/s the server would deliver with a whole core: measured rate ÷ its CPU share (capped at 1) */
const atFullCore = (r: Measured) => updatesPerS(r) / Math.min(1, sum(r.server) / 100);
const lost = (r: Measured) => r.expected - r.received;
const clean = (r: Measured) => !r.error && r.expected > 0 && lost(r) === 0;

const SCENARIO_LABEL: Record<Scenario, string> = {
  typing: "(a) typing",
  cluster: "(a) typing, 2 nodes",
  saturation: "(b) saturation",
  many: "(c) many notebooks",
};

export function logRow(r: Measured): void {
  process.stderr.write(
    `    ${LABEL[r.kind]}: ${f0(r.sent)} sent in ${f1(r.seconds)} s, ${f0(r.received)}/${f0(r.expected)} receipts` +
      ` (${f0(r.unknown)} unknown), ${f0(updatesPerS(r))} updates/s to everyone, ${f0(r.deliveries / r.seconds)} deliveries/s,` +
      ` p50 ${f1(r.p50)} ms, p99 ${f1(r.p99)} ms (windows ${r.windowP99.map(f1).join(", ")}), max ${f1(r.max)} ms` +
      `${r.nodes > 1 ? `, across nodes p50 ${f1(r.farP50)} p99 ${f1(r.farP99)} ms` : ""};` +
      ` server CPU ${r.server.map(f0).join(" + ")} %, ${f0(cpuPerUpdate(r))} µs/update; generator CPU ${f0(r.self)} %` +
      ` (its loop delay p99 ${f1(r.selfLagP99)}, max ${f1(r.selfLagMax)} ms),` +
      ` waited ${r.serverWait.map(f0).join(" + ")} / ${f0(r.selfWait)} %, stolen ${f1(r.steal)} %` +
      `${r.error ? `; ERROR ${r.error}` : ""}\n`,
  );
}

interface Context {
  cfg: {
    editors: number;
    rate: number;
    window: number;
    rooms: number;
    roomSize: number;
    manyRate: number;
    seconds: number;
    rounds: number;
    warmup: number;
    maxPerEditor: number;
  };
  pinning: { serverCpu: number; loadCpu: number } | null;
  machine: Machine;
  elapsedS: number;
  skipped: string[];
}

/** Shared by the generated method texts: why the benchmark process runs with a larger young generation. */
export const HARNESS_GC =
  " Every server, DoctorPy's and the bare ones, runs with the V8 flags of `npm start` (`server/node-flags.ts`), and" +
  " so does the benchmark process itself (package.json's bench scripts): with V8's default young generation, the" +
  " editors' own garbage collection (50 growing documents) stalled this process's event loop for up to 140–160 ms" +
  " once or twice a window, and every receipt it timed meanwhile counted that stall, for both servers alike." +
  " *generator loop delay* is this process's event-loop delay (p99 of its worst window).";

/** The markdown tables, the docs section's body, and whether a target failed. */
export function notebookReport(rows: Measured[], ctx: Context): { tables: string; body: string; failed: boolean } {
  const { cfg } = ctx;
  const detail = [
    "| scenario | server | nodes | notebooks × editors | updates/s sent (target) | updates/s to every editor | deliveries/s | p50 / p90 / p99 / max, ms | p99 of each window, ms | receipts lost | server CPU % | server CPU µs / update | generator CPU % | generator loop delay p99 ms | CPU stolen % | waited for a CPU %, servers / generator |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of rows) {
    detail.push(
      `| ${SCENARIO_LABEL[r.scenario]} | ${LABEL[r.kind]} | ${r.nodes} | ${r.notebooks} × ${r.editors / Math.max(1, r.notebooks)} | ` +
        `${f0(r.sent / r.seconds)} (${r.perSecond === null ? "closed loop" : f0(r.perSecond)}) | ${f0(updatesPerS(r))} | ` +
        `${f0(r.deliveries / r.seconds)} | ${f1(r.p50)} / ${f1(r.p90)} / ${f1(r.p99)} / ${f1(r.max)} | ` +
        `${r.windowP99.map(f1).join(", ")} | ${r.error ? `error: ${r.error}` : `${f0(lost(r))} of ${f0(r.expected)}`} | ` +
        `${r.server.map(f0).join(" + ")} | ${f0(cpuPerUpdate(r))} | ${f0(r.self)} | ${f1(r.selfLagP99)} | ${f1(r.steal)} | ` +
        `${r.serverWait.map(f0).join(" + ")} / ${f0(r.selfWait)} |`,
    );
  }

  let failed = false;
  const verdict = (ok: boolean) => {
    if (!ok) failed = true;
    return ok ? "**PASS**" : "**FAIL**";
  };
  const find = (s: Scenario, k: Kind) => rows.find((r) => r.scenario === s && r.kind === k);
  const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a) ? `${f2(a / b)}×` : "n/a");
  const compare = [
    "| measure | DoctorPy | bare y-websocket | DoctorPy / bare | target (DoctorPy) | verdict |",
    "| --- | ---: | ---: | ---: | ---: | :---: |",
  ];
  const notes: string[] = [];
  for (const s of ["typing", "cluster", "saturation", "many"] as const) {
    const dp = find(s, "doctorpy");
    const bare = find(s, "bare-yjs");
    if (!dp || !bare) continue;
    const name = SCENARIO_LABEL[s];
    if (s === "typing" || s === "cluster") {
      const target = s === "typing" ? TARGET.typingP99 : TARGET.clusterP99;
      compare.push(
        `| ${name}: p99, ms | ${f1(dp.p99)} | ${f1(bare.p99)} | ${ratio(dp.p99, bare.p99)} | < ${target}, nothing lost | ` +
          `${verdict(clean(dp) && dp.p99 < target)} |`,
      );
      compare.push(`| ${name}: p50, ms | ${f1(dp.p50)} | ${f1(bare.p50)} | ${ratio(dp.p50, bare.p50)} | | |`);
      if (s === "cluster")
        compare.push(
          `| ${name}: p50 / p99 of the receipts on the other node, ms | ${f1(dp.farP50)} / ${f1(dp.farP99)} | ` +
            `${f1(bare.farP50)} / ${f1(bare.farP99)} | ${ratio(dp.farP99, bare.farP99)} | | |`,
        );
    }
    if (s === "saturation") {
      const measured = updatesPerS(dp) / updatesPerS(bare);
      const capacity = atFullCore(dp) / atFullCore(bare);
      compare.push(
        `| ${name}: updates/s to every editor | ${f0(updatesPerS(dp))} | ${f0(updatesPerS(bare))} | ${ratio(updatesPerS(dp), updatesPerS(bare))} | ≥ ${TARGET.saturationRatio} × bare | ${verdict(clean(dp) && clean(bare) && measured >= TARGET.saturationRatio)} |`,
        `| ${name}: updates/s at a full server core (measured ÷ server CPU share) | ${f0(atFullCore(dp))} | ${f0(atFullCore(bare))} | ${ratio(atFullCore(dp), atFullCore(bare))} | ≥ ${TARGET.saturationRatio} × bare | ${verdict(capacity >= TARGET.saturationRatio)} |`,
        `| ${name}: p99 at that rate, ms | ${f1(dp.p99)} | ${f1(bare.p99)} | ${ratio(dp.p99, bare.p99)} | | |`,
      );
      for (const r of [dp, bare]) {
        const cpu = sum(r.server);
        const wait = sum(r.serverWait);
        const selfWait = Number.isFinite(r.selfWait) ? r.selfWait : 0;
        const limits = [
          ...(cpu + wait >= 90 ? [`its core (${f0(cpu)} % busy, ${f0(wait)} % waiting for it)`] : []),
          ...(r.self + selfWait >= GENERATOR_BUSY
            ? [`the load generator (${f0(r.self)} % busy, ${f0(selfWait)} % waiting for its core)`]
            : []),
          ...(r.sent / r.seconds >= 0.95 * cfg.maxPerEditor * r.editors ? ["the per-editor cap"] : []),
        ];
        notes.push(
          `- saturation, ${LABEL[r.kind]}: limited by ${limits.length > 0 ? limits.join(" and ") : "latency (window of updates on their way)"}.`,
        );
      }
    }
    if (s === "many") {
      compare.push(
        `| ${name}: p99, ms | ${f1(dp.p99)} | ${f1(bare.p99)} | ${ratio(dp.p99, bare.p99)} | | |`,
        `| ${name}: updates/s to every editor | ${f0(updatesPerS(dp))} | ${f0(updatesPerS(bare))} | ${ratio(updatesPerS(dp), updatesPerS(bare))} | | |`,
      );
    }
    compare.push(
      `| ${name}: server CPU µs / update | ${f0(cpuPerUpdate(dp))} | ${f0(cpuPerUpdate(bare))} | ${ratio(cpuPerUpdate(dp), cpuPerUpdate(bare))} | | |`,
    );
    for (const r of [dp, bare]) {
      if (r.error) notes.push(`- ${SCENARIO_LABEL[r.scenario]}, ${LABEL[r.kind]}: ${r.error}`);
      else if (lost(r) !== 0)
        notes.push(`- ${SCENARIO_LABEL[r.scenario]}, ${LABEL[r.kind]}: ${f0(lost(r))} receipts lost.`);
    }
  }
  const tables = [compare.join("\n"), detail.join("\n"), ...(notes.length > 0 ? [notes.join("\n")] : [])].join("\n\n");

  const reproduce = [
    `BENCH_NOTEBOOK_SECONDS=${cfg.seconds}`,
    `BENCH_NOTEBOOK_ROUNDS=${cfg.rounds}`,
    `BENCH_NOTEBOOK_EDITORS=${cfg.editors}`,
    `BENCH_NOTEBOOK_ROOMS=${cfg.rooms}`,
    "npm run bench:notebook",
  ].join(" ");
  const pin = ctx.pinning
    ? `Servers are pinned to CPU ${ctx.pinning.serverCpu} (both nodes of a 2-node run share it), the editors (this` +
      ` process) to CPU ${ctx.pinning.loadCpu}; redis-server and PostgreSQL are not pinned.${HARNESS_GC}`
    : `No CPU pinning.${HARNESS_GC}`;
  const method = [
    "*Editors* are light y-websocket clients (`bench/lib/yjs-client.ts`: `ws`, `y-protocols/sync`, one `Y.Doc` each)" +
      " in the benchmark process: each does the sync handshake (step 1 / step 2 both ways), announces one awareness" +
      " state, and applies every update it receives to its document (the updates of one socket read in one" +
      " transaction). Each notebook's editor 0 adds the first cell; then every editor types into that cell's" +
      " `Y.Text`, one character per update, each forward on a line of its own (the next character right after its" +
      " previous one, as people type). An update is one Yjs item named by" +
      " (clientID, clock): the sender notes the send time under that name, and each other editor, once the update" +
      " is integrated into its document, records receipt time − send time (one clock, one process). *Receipts lost*:" +
      " updates sent in the windows × other editors of the notebook − receipts, after up to 10 s of draining.",
    `*Scenarios*: (a) ${cfg.editors} editors in one notebook, ${cfg.rate} characters/s each at random phases` +
      ` (${cfg.editors * cfg.rate} updates/s), on one node and on two (editor j on node j mod 2); (b) the same` +
      ` editors in closed loop: each keeps ${cfg.window} updates on their way (not yet received by every other` +
      ` editor) and types the next as soon as one lands, at most ${cfg.maxPerEditor}/s each (95 % of DoctorPy's` +
      ` per-connection limit of ${Math.round(cfg.maxPerEditor / 0.95)} messages/s, above which it closes the` +
      ` connection; the bare server gets the same cap); (c) ${cfg.rooms} notebooks of ${cfg.roomSize} editors,` +
      ` ${cfg.manyRate} characters/s each. (b) runs right after (a) on the same notebook. Per scenario both` +
      ` servers are up with their editors connected, and ${cfg.rounds} windows of ${cfg.seconds} s per server` +
      ` alternate between them, each after ${cfg.warmup} s of typing; latencies are over every receipt of the` +
      " updates sent in the windows, *p99 of each window* shows how much they move.",
    "*DoctorPy* is `startServer` (log silent): the upgrade authenticated by `?token=` (an access token made by the" +
      " fixtures) and authorised by room membership, the notebook's id from `GET /api/v1/rooms/{id}/notebook`," +
      " the per-connection token bucket, every update decoded, applied, broadcast, relayed through a Redis stream" +
      " per notebook on two nodes, appended to the database in batches of 25 ms (in-memory PGlite on one node, a" +
      " fresh PostgreSQL database on two) and compacted in a worker thread. *bare y-websocket*" +
      " (`bench/lib/bare-yjs.ts`) is `ws` with `y-protocols` sync and awareness at the same path: in memory, no" +
      " auth, no limits, no persistence; on two nodes each update made on a node is published on a Redis pub/sub" +
      " channel per notebook and applied by the other node. Each 2-node server pair has its own redis-server. " +
      pin,
    "*updates/s to every editor*: updates sent in the windows that reached every other editor, per second; in (b)" +
      " that is the throughput. *updates/s at a full server core* divides it by the server's CPU share when the" +
      " server was not the limit (the load generator or the cap was): what the server would carry on a whole core" +
      " if its cost per update stayed the same. *server CPU µs / update* is the CPU time of every node over the" +
      " windows ÷ updates sent: the figure least moved by the machine's neighbours. *CPU stolen* is the share of" +
      " the machine's CPU time the hypervisor gave to other guests during the windows (`/proc/stat`), *waited for" +
      " a CPU* the share of the windows the servers' event loops / the benchmark process were ready to run but" +
      " had no core (`/proc/<pid>/schedstat`): on this shared 2-core virtual machine both move the p99 more than" +
      " the servers do. A *generator CPU* near 100 % means the editors, not the server, were the limit.",
  ];
  const howToRead =
    "**How to read.** The first table is the verdict: DoctorPy beside the bare server of the same run, with" +
    " DoctorPy / bare (above 1× for latency and CPU means DoctorPy is slower or costlier; below 1× for throughput" +
    " means it carries less). The targets apply to DoctorPy's figures; the bare server's show what the machine" +
    " allowed at that moment, so where bare misses a latency target too, the machine set the floor. Trust, in" +
    " this order: receipts lost (must be 0), server CPU µs / update (stable from run to run), p50, then p99" +
    " (moves with the machine's neighbours: read it against the same row's bare figure and the per-window spread).";
  const typing = rows.filter((r) => r.scenario === "typing" && r.deliveries > 0);
  /** the editors' CPU per receipt (sending included), µs */
  const perReceipt =
    typing.length > 0
      ? typing.reduce((n, r) => n + (r.self * 10_000 * r.seconds) / r.deliveries, 0) / typing.length
      : Number.NaN;
  const worst = (f: (r: Measured) => number) => Math.max(...rows.map(f).filter(Number.isFinite), 0);
  const environment =
    `**Environment.** 1-minute load average ${ctx.machine.load.toFixed(2)} on ${ctx.machine.cores} cores when the run` +
    ` started${ctx.machine.load > 1 ? " (the machine was not idle: other work shared it)" : ""}; during the windows` +
    ` the servers waited for a CPU up to ${f0(worst((r) => Math.max(...r.serverWait)))} % of the time, the` +
    ` editors' process up to ${f0(worst((r) => r.selfWait))} %, and up to ${f1(worst((r) => r.steal))} % of the` +
    " machine's CPU time was stolen by the hypervisor." +
    (Number.isFinite(perReceipt)
      ? ` The editors cost this process ${f1(perReceipt)} µs of CPU per receipt in (a), so one core carries about` +
        ` ${f0(1e6 / perReceipt / (cfg.editors - 1))} updates/s to ${cfg.editors - 1} other editors: in (b) the load` +
        " generator reaches its limit before the bare server does, hence the *full server core* row."
      : "");
  const body = [
    `Measured ${ctx.machine.date.slice(0, 10)} on ${describeMachine(ctx.machine)}; the whole run took ${f0(ctx.elapsedS)} s;` +
      ` 1-minute load average ${ctx.machine.load.toFixed(2)} when it started.`,
    "",
    `Reproduce: \`${reproduce}\`.`,
    "",
    howToRead,
    "",
    ...method.flatMap((p) => [p, ""]),
    environment,
    "",
    tables,
    "",
    ...(ctx.skipped.length > 0 ? [`Skipped: ${ctx.skipped.join("; ")}.`, ""] : []),
  ].join("\n");
  return { tables, body, failed };
}
