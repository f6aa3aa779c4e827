/**
 * Tutor streaming benchmark: `npm run bench:tutor`.
 *
 * A model (bench/lib/paced-model.ts, in this process) writes BENCH_TUTOR_RATE (50) tokens a second, each
 * stamped with the moment it was written; every member of one room receives each `tutor:delta` and records
 * receipt time − stamp. DoctorPy (the real tutor: `tutor:ask` → queue → OpenAI-compatible provider → answer log
 * → broadcast) is measured beside a bare Socket.IO server that reads the same model's stream and broadcasts each
 * token to the room (bench/lib/bare-tutor.ts), with the same clients, in the same run: each row opens a room on
 * both servers and alternates their answers. Servers run in child processes pinned to the last core; the members
 * are light WebSocket clients (bench/lib/light-socket.ts) in this process, pinned to core 0. Prints markdown
 * tables and writes them to the `## bench:tutor` section of docs/BENCHMARKS.md.
 *
 * Environment: BENCH_TUTOR_SIZES (room sizes, default `10,100,500`), BENCH_TUTOR_NODES (`1,2`: one node, PGlite;
 * two nodes, a fresh PostgreSQL database on BENCH_PG_ADMIN_URL and a private redis-server), BENCH_TUTOR_ANSWERS
 * (3 measured answers per server and row) of BENCH_TUTOR_TOKENS (100) tokens after BENCH_TUTOR_WARMUP (1) answer
 * of 20 tokens on each node, BENCH_TUTOR_RATE (50 tokens/s), BENCH_SERVER_LOG=<level> with
 * BENCH_CHILD_STDOUT=inherit (DoctorPy's logs), BENCH_PIN=0 (no CPU pinning), BENCH_STRICT=1 (exit 1 when a row
 * fails; an inconclusive row does not), BENCH_NO_DOCS=1 (do not touch docs/BENCHMARKS.md).
 */
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { pinning, pinSelf, runBench, type ServerChild, type ServerSpec } from "./lib/child.ts";
import { CpuMeter, type CpuReport } from "./lib/cpu-meter.ts";
import { MAX_SEQ } from "./lib/delta-recorder.ts";
import { intEnv, killRedis, startNodes } from "./lib/nodes.ts";
import { type PacedModel, startPacedModel } from "./lib/paced-model.ts";
import { sleep } from "./lib/realtime.ts";
import { describeMachine, machineFacts, publishSection } from "./lib/report.ts";
import { type Asked, type Deliveries, TutorRoom } from "./lib/tutor-room.ts";

const ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "..");
const DOCS = resolve(ROOT, "docs/BENCHMARKS.md");
const HEADING = "## bench:tutor";

/** p99 delay DoctorPy may add to the bare broadcast, ms, by number of nodes */
const TARGET_ADDED_P99: Record<number, number> = { 1: 15, 2: 30 };
const WARMUP_TOKENS = 20;
/** pause between the warm-up and the measured answers, ms */
const SETTLE_MS = 1000;

function listEnv(name: string, fallback: number[], min: number): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const list = raw.split(",").map((s) => Number(s.trim()));
  if (list.some((n) => !Number.isInteger(n) || n < min))
    throw new Error(`${name} must be a comma-separated list of integers >= ${min}, got ${raw}`);
  return list;
}

const cfg = {
  sizes: listEnv("BENCH_TUTOR_SIZES", [10, 100, 500], 2),
  nodes: listEnv("BENCH_TUTOR_NODES", [1, 2], 1),
  answers: intEnv("BENCH_TUTOR_ANSWERS", 3, 1),
  tokens: intEnv("BENCH_TUTOR_TOKENS", 100, 1, MAX_SEQ - 1),
  rate: intEnv("BENCH_TUTOR_RATE", 50, 1, 1000),
  warmup: intEnv("BENCH_TUTOR_WARMUP", 1, 0),
};
if (cfg.nodes.some((n) => n > 2)) throw new Error("BENCH_TUTOR_NODES: 1 and 2 nodes only (targets exist for those)");
// DoctorPy's tutor gives up on a generation after 20 s (tests/helpers/config.ts, which the server child uses).
if (cfg.tokens / cfg.rate > 15) throw new Error("an answer must stream within 15 s: lower BENCH_TUTOR_TOKENS");

const answerSeconds =
  (cfg.warmup * WARMUP_TOKENS + cfg.answers * cfg.tokens) / cfg.rate + 2 * (cfg.warmup + cfg.answers);
const budgetMs =
  1000 * (60 + cfg.nodes.length * (90 + cfg.sizes.reduce((s, m) => s + 2 * (20 + answerSeconds + m / 20), 0)));
const childTtlMs = budgetMs + 10_000;

const log = (line: string) => process.stderr.write(`${line}\n`);
const f0 = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "n/a");
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "n/a");

type Kind = "bare-io" | "doctorpy";
const LABEL: Record<Kind, string> = { "bare-io": "bare Socket.IO", doctorpy: "DoctorPy" };
const serverLog = (process.env.BENCH_SERVER_LOG ?? "silent") as ServerSpec["logLevel"];

// ---------------------------------------------------------------------------------------------------------------
// Servers

interface Setup {
  kind: Kind;
  nodes: ServerChild[];
  stop(): Promise<void>;
}

/** One node, or two sharing a private redis-server (and, for DoctorPy, a fresh PostgreSQL database). */
async function startSetup(kind: Kind, count: number, model: PacedModel): Promise<Setup> {
  const env: Record<string, string> = { BENCH_LLM_BASE_URL: model.url, BENCH_LLM_MODEL: "bench-model" };
  const spec: ServerSpec = { server: kind, logLevel: serverLog, ttlMs: childTtlMs, env };
  return { kind, ...(await startNodes(spec, count)) };
}

// ---------------------------------------------------------------------------------------------------------------
// One row: a room of `members` on each server, answers streamed into them in turn

interface Measured extends Deliveries, CpuReport {
  kind: Kind;
  nodes: number;
  members: number;
  setupS: number;
  /** why the row could not be measured (its figures are then NaN) */
  error?: string;
}

interface Side {
  kind: Kind;
  setup: Setup;
  room?: TutorRoom;
  meter: CpuMeter;
  warmups: Asked[];
  answers: Asked[];
  error?: string;
}

/**
 * Opens a room of `members` on both servers, warms each up, then asks the measured answers alternately on bare
 * and on DoctorPy: both see the same minutes of this machine's changing neighbours.
 */
async function measureRow(setups: Setup[], members: number, model: PacedModel): Promise<Measured[]> {
  const sides: Side[] = setups.map((setup) => ({
    kind: setup.kind,
    setup,
    meter: new CpuMeter(setup.nodes),
    warmups: [],
    answers: [],
  }));
  const fail = (side: Side, err: unknown) => {
    side.error = err instanceof Error ? (err.message.split("\n")[0] ?? "failed") : String(err);
    log(`    ${LABEL[side.kind]}: ${side.error}`);
  };
  try {
    for (const side of sides) {
      try {
        side.room = await TutorRoom.open(side.setup.nodes, members, side.kind === "doctorpy", model);
      } catch (err) {
        fail(side, err);
      }
    }
    // Warm-up on every node (askers alternate between the nodes): a node's first generation pays for loading the
    // course and opening its connection to the model. Then a pause, so that the garbage of the set-up is collected
    // before the measured answers rather than during the first of them.
    for (const side of sides) {
      try {
        for (let w = 0; w < cfg.warmup * side.setup.nodes.length && side.room; w++)
          side.warmups.push(await side.room.answer(cfg.answers + w, WARMUP_TOKENS, cfg.rate));
      } catch (err) {
        fail(side, err);
      }
    }
    await sleep(SETTLE_MS);
    for (let a = 0; a < cfg.answers; a++) {
      for (const side of sides) {
        if (side.error || !side.room) continue;
        try {
          await side.meter.start();
          side.answers.push(await side.room.answer(a, cfg.tokens, cfg.rate));
          await side.meter.stop();
        } catch (err) {
          fail(side, err);
        }
      }
    }
    return sides.map((side) => {
      const nodes = side.setup.nodes.length;
      const setup = side.room?.setup;
      const setupS = setup ? (setup.fixturesMs + setup.connectMs + setup.joinMs) / 1000 : Number.NaN;
      const base = { kind: side.kind, nodes, members, setupS };
      if (side.error || !side.room) return failedRow(base, side.error ?? "no room");
      const row: Measured = { ...base, ...side.room.deliveries(side.answers, side.warmups), ...side.meter.report() };
      logRow(row);
      if (setup)
        log(
          `      set-up: fixtures ${f1(setup.fixturesMs / 1000)} s, ${members} handshakes ` +
            `${f1(setup.connectMs / 1000)} s, ${members} joins ${f1(setup.joinMs / 1000)} s`,
        );
      return row;
    });
  } finally {
    for (const side of sides) side.room?.close();
  }
}

function failedRow(base: Pick<Measured, "kind" | "nodes" | "members" | "setupS">, error: string): Measured {
  const nan = Number.NaN;
  return {
    ...base,
    p50: nan,
    p90: nan,
    p99: nan,
    max: nan,
    answerP99: [],
    nearP99: nan,
    farP99: nan,
    expected: 0,
    received: 0,
    duplicates: 0,
    stray: 0,
    tokensPerSec: nan,
    server: [],
    self: nan,
    serverWait: [],
    selfWait: nan,
    steal: nan,
    selfLagP99: nan,
    selfLagMax: nan,
    error,
  };
}

/** run-queue waits: the servers' (`+` between nodes), then this process's after a slash */
const waitCell = (r: Measured) => `${r.serverWait.map(f0).join(" + ")} / ${f0(r.selfWait)}`;

function logRow(r: Measured): void {
  log(
    `    ${LABEL[r.kind]}: ${f0(r.received)}/${f0(r.expected)} deliveries (${r.duplicates} twice, ${r.stray} stray), p50 ${f1(r.p50)} ms, ` +
      `p99 ${f1(r.p99)} ms (answers ${r.answerP99.map(f1).join(", ")}), max ${f1(r.max)} ms` +
      (r.nodes > 1 ? `, p99 on the generating node ${f1(r.nearP99)} ms, on the other ${f1(r.farP99)} ms` : "") +
      `; ${f1(r.tokensPerSec)} tokens/s; server CPU ${r.server.map(f0).join(" + ")} %, ` +
      `load generator CPU ${f0(r.self)} %, waited for a CPU ${waitCell(r)} %, CPU stolen ${f1(r.steal)} %; set-up ${f1(r.setupS)} s`,
  );
}

// ---------------------------------------------------------------------------------------------------------------

function clusterUnavailable(): string | null {
  const redis = spawnSync("redis-server", ["--version"], { stdio: "ignore" });
  return redis.error || redis.status !== 0 ? "redis-server is not on the PATH" : null;
}

interface Pair {
  nodes: number;
  members: number;
  bare: Measured;
  doctorpy: Measured;
}

async function run(): Promise<number> {
  const machine = machineFacts();
  const pinned = pinSelf();
  log(`bench:tutor on ${describeMachine(machine)}; load average ${machine.load.toFixed(2)}`);
  log(
    pinned && pinning
      ? `servers pinned to CPU ${pinning.serverCpu}, members and model (this process) to CPU ${pinning.loadCpu}`
      : "no CPU pinning",
  );
  log(`time budget ${Math.round(budgetMs / 1000)} s`);
  const started = performance.now();
  const model = await startPacedModel(cfg.rate);
  const pairs: Pair[] = [];
  const skipped: string[] = [];
  try {
    for (const count of cfg.nodes) {
      const why = count > 1 ? clusterUnavailable() : null;
      if (why) {
        skipped.push(`${count} nodes: ${why}`);
        continue;
      }
      log(`${count} node${count > 1 ? "s" : ""}:`);
      // Both servers stay up through the room sizes, and each row alternates answers between them.
      const bare = await startSetup("bare-io", count, model);
      try {
        const doctorpy = await startSetup("doctorpy", count, model);
        try {
          for (const members of cfg.sizes) {
            log(`  ${members} members ...`);
            const [b, d] = (await measureRow([bare, doctorpy], members, model)) as [Measured, Measured];
            pairs.push({ nodes: count, members, bare: b, doctorpy: d });
          }
        } finally {
          await doctorpy.stop();
        }
      } finally {
        await bare.stop();
      }
    }
  } finally {
    await model.close();
  }
  if (model.unexpected > 0) log(`the model refused ${model.unexpected} requests it did not expect`);
  const elapsedS = (performance.now() - started) / 1000;

  // ------------------------------------------------------------------------------------------------- report
  let failed = false;
  const lost = (r: Measured) => r.expected - r.received;
  const clean = (r: Measured) => !r.error && r.expected > 0 && lost(r) === 0 && r.duplicates === 0 && r.stray === 0;
  /** how far one server's p99 moved between its own answers: differences below it are not resolved */
  const spread = (r: Measured) =>
    r.answerP99.length > 0 ? Math.max(...r.answerP99) - Math.min(...r.answerP99) : Number.NaN;
  const main = [
    "| members | nodes | DoctorPy p50 / p99, ms | bare p50 / p99, ms | added p99, ms | target | verdict | noise: p99 spread between answers, ms (DoctorPy; bare) | deliveries lost (DoctorPy; bare) | CPU stolen %, DoctorPy; bare | waited for a CPU %, DoctorPy; bare |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | :---: | ---: | ---: | ---: | ---: |",
  ];
  for (const { nodes, members, bare, doctorpy: dp } of pairs) {
    const target = TARGET_ADDED_P99[nodes] as number;
    const added = dp.p99 - bare.p99;
    const noise = Math.max(spread(dp), spread(bare));
    let verdict: string;
    if (!clean(dp) || !clean(bare)) verdict = "**FAIL**";
    else if (!(noise < target)) verdict = "inconclusive";
    else verdict = added < target ? "**PASS**" : "**FAIL**";
    if (verdict === "**FAIL**") failed = true;
    const lostCell = (r: Measured) => (r.error ? "error" : `${f0(lost(r))} of ${f0(r.expected)}`);
    main.push(
      `| ${f0(members)} | ${nodes} | ${f1(dp.p50)} / ${f1(dp.p99)} | ${f1(bare.p50)} / ${f1(bare.p99)} | ` +
        `${f1(added)} | < ${target} | ${verdict} | ${f1(spread(dp))}; ${f1(spread(bare))} | ` +
        `${lostCell(dp)}; ${lostCell(bare)} | ${f1(dp.steal)}; ${f1(bare.steal)} | ${waitCell(dp)}; ${waitCell(bare)} |`,
    );
  }
  const detail = [
    "| server | nodes | members | p50 ms | p90 ms | p99 ms | max ms | p99 of each answer, ms | p99 generating node / other node, ms | deliveries twice | tokens/s | server CPU % | load generator CPU % | set-up s |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const p of pairs) {
    for (const r of [p.bare, p.doctorpy]) {
      detail.push(
        `| ${LABEL[r.kind]} | ${r.nodes} | ${f0(r.members)} | ${f1(r.p50)} | ${f1(r.p90)} | ${f1(r.p99)} | ${f1(r.max)} | ` +
          `${r.answerP99.map(f1).join(", ")} | ${r.nodes > 1 ? `${f1(r.nearP99)} / ${f1(r.farP99)}` : "—"} | ` +
          `${f0(r.duplicates)} | ${f1(r.tokensPerSec)} | ${r.server.map(f0).join(" + ")} | ${f0(r.self)} | ${f1(r.setupS)} |`,
      );
    }
  }
  const errors = pairs.flatMap((p) =>
    [p.bare, p.doctorpy]
      .filter((r) => r.error)
      .map((r) => `- ${LABEL[r.kind]}, ${r.nodes} node(s), ${r.members} members: ${r.error}`),
  );
  const tables = [main.join("\n"), detail.join("\n")];

  const reproduce = [
    ...(process.env.BENCH_TUTOR_SIZES ? [`BENCH_TUTOR_SIZES=${cfg.sizes.join(",")}`] : []),
    ...(process.env.BENCH_TUTOR_NODES ? [`BENCH_TUTOR_NODES=${cfg.nodes.join(",")}`] : []),
    `BENCH_TUTOR_ANSWERS=${cfg.answers}`,
    `BENCH_TUTOR_TOKENS=${cfg.tokens}`,
    `BENCH_TUTOR_RATE=${cfg.rate}`,
    "npm run bench:tutor",
  ].join(" ");
  const method = [
    `A fake OpenAI-compatible model (\`bench/lib/paced-model.ts\`, in the benchmark process) streams ${cfg.rate}` +
      " tokens a second over SSE; each token's text is the moment it was written (`performance.timeOrigin +" +
      " performance.now()`, every process is on this machine), and each member records receipt time − stamp for" +
      ` every \`tutor:delta\`. Per row: one room of *members* light WebSocket clients on each server;` +
      ` ${cfg.warmup} warm-up answer of ${WARMUP_TOKENS} tokens per node, then ${cfg.answers} answers of` +
      ` ${cfg.tokens} tokens on each server, asked (\`tutor:ask\`) by a different member each time, alternately on` +
      " bare and on DoctorPy, each once the previous one has ended (so that both servers see the same minutes of" +
      " this machine's neighbours); percentiles are over every delivery of the measured answers to every member" +
      " (the asker included).",
    "*DoctorPy* is `startServer` (log silent) with the model as its `tutor.llm`: the question is stored and queued," +
      " the room's lease taken, the prompt built from the course, and each token appended to the answer log before" +
      " it is broadcast. *bare* is Socket.IO 4.8 on a plain HTTP server that, on `tutor:ask`, reads the same model's" +
      ' stream with the same `fetch` and parsing and does `io.to(room).emit("tutor:delta", { roomId, answerId, seq,' +
      " text })` per token (`bench/lib/bare-tutor.ts`): no auth, no queue, no persistence. *added p99* is DoctorPy's" +
      " p99 − bare's p99 in the same row (negative when the bare server's answers met the worse moments of the" +
      " machine); both servers stay up for all the room sizes.",
    "1 node: DoctorPy on in-memory PGlite. 2 nodes: members alternate between the nodes, askers too (so half the" +
      " room is on the node that generates and half receives through the Redis adapter); each server pair has its" +
      " own redis-server, and DoctorPy a fresh PostgreSQL database (its answer log is then a Redis stream)." +
      (pinned && pinning
        ? ` Servers are pinned to CPU ${pinning.serverCpu} (both nodes share it), the benchmark process (model and` +
          ` members) to CPU ${pinning.loadCpu}; redis-server and PostgreSQL are not pinned.`
        : " No CPU pinning."),
    "*Deliveries lost*: tokens the model wrote × members − distinct pieces received (by answer, member and `seq`);" +
      " a row fails when anything is lost, duplicated or stray. The targets (added p99 < 15 ms on one node, < 30 ms" +
      " on two) are set for 500 members and applied to every size. *Noise* is how far each server's p99 moved" +
      " between its own answers of the row (max − min): where it reaches the target, the difference between the" +
      " servers is not resolved at the target's scale and the verdict reads *inconclusive* rather than PASS or FAIL. *CPU stolen* is the share of the" +
      " machine's CPU time the hypervisor gave to other guests during the measured answers (`/proc/stat`), and" +
      " *waited for a CPU* the share of that time the servers' event loops (`+` between nodes) / the benchmark" +
      " process's spent ready to run but waiting for a core taken by something else (`/proc/<pid>/schedstat`):" +
      " this is a shared 2-core virtual machine where other work runs too, and both move the p99 more than the" +
      " servers do. *tokens/s* below the model's rate means the benchmark process itself (model and members)" +
      " was short of CPU. *set-up* is fixtures, handshakes and joins (DoctorPy creates users, sessions, tokens and" +
      " the room's memberships through its domain services).",
  ];
  const body = [
    `Measured ${machine.date.slice(0, 10)} on ${describeMachine(machine)}; the whole run took ${f0(elapsedS)} s;` +
      ` 1-minute load average ${machine.load.toFixed(2)} when it started.`,
    "",
    `Reproduce: \`${reproduce}\`.`,
    "",
    ...method.flatMap((p) => [p, ""]),
    ...tables.flatMap((t) => [t, ""]),
    ...(errors.length > 0 ? ["Rows that could not be measured:", "", ...errors, ""] : []),
    ...(skipped.length > 0 ? [`Skipped: ${skipped.join("; ")}.`, ""] : []),
  ].join("\n");

  process.stdout.write(
    `\n${HEADING}\n\nMachine: ${describeMachine(machine)}, ${machine.date}, load average ${machine.load.toFixed(2)}\n\n` +
      `${tables.join("\n\n")}\n${errors.length > 0 ? `\n${errors.join("\n")}\n` : ""}`,
  );
  if (process.env.BENCH_NO_DOCS !== "1") {
    await publishSection(DOCS, HEADING, body, machine);
    log(`wrote the "${HEADING}" section of ${DOCS}`);
  }
  return failed && process.env.BENCH_STRICT === "1" ? 1 : 0;
}

runBench("bench:tutor", budgetMs, run, { cleanup: killRedis, exitAtOnce: true });
