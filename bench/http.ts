/**
 * HTTP benchmark: `npm run bench:http`.
 *
 * Runs a bare Hono app (the baseline) and the DoctorPy server, each alone in its own child process on a
 * loopback port, loads them with autocannon from this process, prints a markdown table and writes it to the
 * `## HTTP (bench:http)` section of docs/BENCHMARKS.md.
 *
 * Environment: BENCH_DURATION (seconds, default 10), BENCH_CONNECTIONS (default 100), BENCH_WARMUP (seconds,
 * default 1), BENCH_LOG_INFO=0 (skip the variant logging at info), BENCH_CPU_PROF=<dir> (V8 CPU profiles of
 * the DoctorPy children), BENCH_PIN=0 (no CPU pinning), BENCH_STRICT=1 (exit 1 when the latency target fails),
 * BENCH_NO_DOCS=1 (do not touch docs/BENCHMARKS.md).
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { pinning, pinSelf, runBench, type ServerChild, startServerChild } from "./lib/child.ts";
import { type LoadOptions, type Measurement, measure } from "./lib/load.ts";
import { intEnv } from "./lib/nodes.ts";
import { describeMachine, machineFacts, markdownTable, publishSection } from "./lib/report.ts";

const ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "..");
const DOCS = resolve(ROOT, "docs/BENCHMARKS.md");
const HEADING = "## HTTP (bench:http)";
/** p99 target of GET /api/v1/auth/me, in ms */
const TARGET_P99_MS = 25;

const load: LoadOptions = {
  duration: intEnv("BENCH_DURATION", 10, 1),
  connections: intEnv("BENCH_CONNECTIONS", 100, 1),
  warmup: intEnv("BENCH_WARMUP", 1, 0),
};
const withInfoLogs = process.env.BENCH_LOG_INFO !== "0";
const cpuProfDir = process.env.BENCH_CPU_PROF ? resolve(process.env.BENCH_CPU_PROF) : undefined;

// A hard bound on the whole run: every measured scenario, plus start-up and set-up of each server.
const servers = withInfoLogs ? 3 : 2;
const scenarios = 1 + 3 * (servers - 1);
const budgetMs = (scenarios * (load.warmup + load.duration + 3) + servers * 60 + 30) * 1000;
const childTtlMs = budgetMs + 10_000;

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Reads `name=value` of the first Set-Cookie of a response. */
function sessionCookie(res: Response): string {
  const pair = res.headers.getSetCookie()[0]?.split(";")[0];
  if (!pair?.includes("=")) throw new Error("registration answered without a session cookie");
  return pair;
}

async function expectStatus(res: Response, status: number, what: string): Promise<void> {
  if (res.status !== status) {
    throw new Error(`${what}: expected ${status}, got ${res.status}: ${(await res.text()).slice(0, 300)}`);
  }
}

/** Registers a user, keeps its cookie, gets an access token, and checks both credentials work. */
async function credentials(url: string): Promise<{ cookie: string; bearer: string }> {
  const registered = await fetch(`${url}/api/v1/auth/register`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: url },
    body: JSON.stringify({
      email: "bench@example.com",
      password: "correct-horse-battery-staple-42",
      displayName: "Bench",
    }),
  });
  await expectStatus(registered, 201, "POST /api/v1/auth/register");
  const cookie = sessionCookie(registered);
  const issued = await fetch(`${url}/api/v1/auth/token`, { method: "POST", headers: { cookie, origin: url } });
  await expectStatus(issued, 200, "POST /api/v1/auth/token");
  const { token } = (await issued.json()) as { token: string };
  for (const [via, headers] of [
    ["cookie", { cookie }],
    ["token", { authorization: `Bearer ${token}` }],
  ] as const) {
    const me = await fetch(`${url}/api/v1/auth/me`, { headers });
    await expectStatus(me, 200, `GET /api/v1/auth/me (${via})`);
    const body = (await me.json()) as { via: string };
    if (body.via !== via) throw new Error(`GET /api/v1/auth/me answered via=${body.via}, expected ${via}`);
  }
  return { cookie, bearer: token };
}

async function withServer<T>(spec: Parameters<typeof startServerChild>[0], fn: (s: ServerChild) => Promise<T>) {
  const child = await startServerChild(spec);
  try {
    return await fn(child);
  } finally {
    await child.stop();
  }
}

async function run(): Promise<number> {
  const machine = machineFacts();
  const pinned = pinSelf();
  log(`bench:http on ${describeMachine(machine)}; load average ${machine.load.toFixed(2)}`);
  const busy = machine.load > 0.5;
  if (busy) log("warning: the machine is busy with other work; req/s and latencies will be worse than on an idle one");
  log(
    `autocannon: ${load.connections} connections, ${load.duration} s per scenario after ${load.warmup} s warm-up; ` +
      (pinned && pinning
        ? `server pinned to CPU ${pinning.serverCpu}, load generator to CPU ${pinning.loadCpu}`
        : "no CPU pinning"),
  );
  const rows: Measurement[] = [];
  const step = async (server: ServerChild, scenario: string, path: string, headers: Record<string, string> = {}) => {
    log(`  ${scenario} ...`);
    const m = await measure(scenario, `${server.url}${path}`, headers, load, () => server.cpuMicros());
    log(
      `    ${Math.round(m.reqPerSec)} req/s, p50 ${m.p50} ms, p99 ${m.p99} ms, ${m.errors} errors, ` +
        `${m.non2xx} non-2xx, server CPU ${Math.round(m.cpuMicrosPerReq ?? Number.NaN)} µs/req`,
    );
    rows.push(m);
    return m;
  };

  const bare = await withServer({ server: "bare", ttlMs: childTtlMs }, (s) =>
    step(s, "bare Hono `GET /hello` (baseline)", "/hello"),
  );

  const meRows: Measurement[] = [];
  const variants: { level: "silent" | "info"; label: string }[] = [{ level: "silent", label: "log silent" }];
  if (withInfoLogs) variants.push({ level: "info", label: "log info → /dev/null" });
  for (const v of variants) {
    await withServer({ server: "doctorpy", logLevel: v.level, cpuProfDir, ttlMs: childTtlMs }, async (s) => {
      const { cookie, bearer } = await credentials(s.url);
      await step(s, `DoctorPy \`GET /healthz\` (${v.label})`, "/healthz");
      meRows.push(
        await step(s, `DoctorPy \`GET /api/v1/auth/me\`, cookie (${v.label})`, "/api/v1/auth/me", { cookie }),
      );
      meRows.push(
        await step(s, `DoctorPy \`GET /api/v1/auth/me\`, Bearer (${v.label})`, "/api/v1/auth/me", {
          authorization: `Bearer ${bearer}`,
        }),
      );
    });
  }

  const table = markdownTable(rows, bare.reqPerSec);
  const verdicts = meRows.map(
    (r) => `- ${r.scenario}: p99 ${r.p99} ms → **${r.p99 < TARGET_P99_MS ? "PASS" : "FAIL"}**`,
  );
  const failures = rows.filter((r) => r.errors > 0 || r.non2xx > 0);
  const targetMissed = meRows.some((r) => r.p99 >= TARGET_P99_MS);

  const body = [
    `Measured ${machine.date.slice(0, 10)} on ${describeMachine(machine)}.`,
    "",
    `Reproduce: \`BENCH_DURATION=${load.duration} BENCH_CONNECTIONS=${load.connections} npm run bench:http\`.`,
    "",
    `autocannon, ${load.connections} connections, ${load.duration} s per scenario after a ${load.warmup} s warm-up. ` +
      "Each server runs alone in its own child process on 127.0.0.1" +
      (pinned && pinning
        ? ` (pinned to CPU ${pinning.serverCpu}; autocannon on CPU ${pinning.loadCpu}).`
        : " (no CPU pinning).") +
      " DoctorPy: `startServer` with in-memory PGlite, rate limits raised to 10,000,000/min, one registered user;" +
      " *cookie* sends its session cookie, *Bearer* an access token from `POST /api/v1/auth/token`." +
      " *log info* is the production log level (one JSON line per request) with stdout sent to /dev/null." +
      " Latencies have autocannon's 1 ms resolution. *server CPU µs/req* is the CPU time (user + system) of the" +
      " server process over the measured run divided by the requests completed: the figure least moved by other" +
      " work on the machine.",
    "",
    busy
      ? `The machine was not idle: 1-minute load average ${machine.load.toFixed(2)} on ${machine.cores} cores when` +
        " the run started, so req/s and latencies are pessimistic; compare rows of one run with each other."
      : `1-minute load average when the run started: ${machine.load.toFixed(2)}.`,
    "",
    table,
    "",
    `Target: p99 of \`GET /api/v1/auth/me\` under ${TARGET_P99_MS} ms.`,
    "",
    ...verdicts,
  ].join("\n");

  process.stdout.write(
    `\n## HTTP (bench:http)\n\nMachine: ${machine.cpu} (${machine.cores} cores), Node ${machine.node}, ${machine.os}, ${machine.date}, load average ${machine.load.toFixed(2)}\n\n${table}\n\nTarget p99 /api/v1/auth/me < ${TARGET_P99_MS} ms:\n${verdicts.join("\n")}\n`,
  );

  if (failures.length > 0) {
    for (const f of failures)
      log(`ERROR: ${f.scenario}: ${f.errors} errors, status codes ${JSON.stringify(f.statusCodes)}`);
    log("not writing docs/BENCHMARKS.md: the run had errors or non-2xx answers");
    return 1;
  }
  if (process.env.BENCH_NO_DOCS !== "1") {
    await publishSection(DOCS, HEADING, body, machine);
    log(`wrote the "${HEADING}" section of ${DOCS}`);
  }
  if (cpuProfDir) log(`CPU profiles of the DoctorPy children: ${cpuProfDir}`);
  return targetMissed && process.env.BENCH_STRICT === "1" ? 1 : 0;
}

runBench("bench:http", budgetMs, run);
