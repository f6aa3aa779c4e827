/**
 * Summarises a V8 CPU profile (`--cpu-prof`, as written by BENCH_CPU_PROF=<dir> for the DoctorPy children):
 * `npx tsx bench/lib/cpuprofile.ts <file.cpuprofile> [fromS toS] [top]`.
 *
 * Prints a per-second timeline of busy time (to pick the loaded window), then for the window [fromS, toS)
 * (seconds from the start of the profile; default: all of it): self time by package / project file, the top
 * functions by self time, and the project functions (server/, db/, shared/) by inclusive time.
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [file, fromArg, toArg, topArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write("usage: tsx bench/lib/cpuprofile.ts <file.cpuprofile> [fromS toS] [top]\n");
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const top = Number(topArg ?? 25);

const byId = new Map<number, ProfileNode>();
const parent = new Map<number, number>();
for (const n of profile.nodes) byId.set(n.id, n);
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const IDLE = new Set(["(idle)", "(program)"]);
const isIdle = (n: ProfileNode) => n.callFrame.functionName === "(idle)";

/** node_modules package, project path, or a V8 pseudo-frame */
function bucket(n: ProfileNode): string {
  const { url, functionName } = n.callFrame;
  if (!url) return functionName.startsWith("(") ? functionName : "(native)";
  const nm = url.lastIndexOf("/node_modules/");
  if (nm !== -1) {
    const rest = url.slice(nm + "/node_modules/".length).split("/");
    return rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }
  if (url.startsWith("node:")) return url;
  const m = /\/(server|db|shared|bench|tests)\/(.*)$/.exec(url);
  return m ? `${m[1]}/${m[2]}` : url;
}

const label = (n: ProfileNode) =>
  `${n.callFrame.functionName || "(anonymous)"} ${bucket(n)}:${n.callFrame.lineNumber + 1}`;

// Sample times, relative to the start, in µs.
const times: number[] = [];
let t = 0;
for (const d of profile.timeDeltas) {
  t += d;
  times.push(t);
}
const totalS = (profile.endTime - profile.startTime) / 1e6;

// Timeline: busy ms per second.
const busy = new Array(Math.ceil(totalS) + 1).fill(0) as number[];
profile.samples.forEach((id, i) => {
  const node = byId.get(id);
  const dt = profile.timeDeltas[i + 1] ?? 0;
  const second = Math.floor((times[i] ?? 0) / 1e6);
  if (node && !isIdle(node)) busy[second] = (busy[second] ?? 0) + dt / 1000;
});
process.stdout.write(`profile ${file}: ${totalS.toFixed(1)} s\nbusy ms per second:\n`);
process.stdout.write(`${busy.map((b, s) => `${s}:${Math.round(b)}`).join(" ")}\n\n`);

const from = fromArg ? Number(fromArg) * 1e6 : 0;
const to = toArg ? Number(toArg) * 1e6 : Number.POSITIVE_INFINITY;

const self = new Map<number, number>();
let windowTotal = 0;
profile.samples.forEach((id, i) => {
  const at = times[i] ?? 0;
  if (at < from || at >= to) return;
  const dt = profile.timeDeltas[i + 1] ?? 0;
  self.set(id, (self.get(id) ?? 0) + dt);
  windowTotal += dt;
});

const idleUs = [...self].filter(([id]) => isIdle(byId.get(id) as ProfileNode)).reduce((a, [, v]) => a + v, 0);
const busyUs = windowTotal - idleUs;
const pct = (us: number) => `${((100 * us) / busyUs).toFixed(1).padStart(5)} %`;
const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms`;
process.stdout.write(
  `window ${(from / 1e6).toFixed(1)}–${Number.isFinite(to) ? (to / 1e6).toFixed(1) : "end"} s: ` +
    `${(windowTotal / 1e6).toFixed(1)} s, busy ${(busyUs / 1e6).toFixed(2)} s; percentages are of busy time\n\n`,
);

const sum = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
const print = (title: string, m: Map<string, number>, n: number) => {
  process.stdout.write(`${title}\n`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n))
    process.stdout.write(`${ms(v)} ${pct(v)}  ${k}\n`);
  process.stdout.write("\n");
};

const buckets = new Map<string, number>();
const fns = new Map<string, number>();
for (const [id, us] of self) {
  const n = byId.get(id) as ProfileNode;
  if (isIdle(n)) continue;
  sum(buckets, bucket(n), us);
  sum(fns, label(n), us);
}
print("self time by package / file:", buckets, top);
print("self time by function:", fns, top);

// Inclusive time of project functions: a sample counts once per distinct project function on its stack.
const inclusive = new Map<string, number>();
for (const [id, us] of self) {
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const n = byId.get(cur) as ProfileNode;
    if (IDLE.has(n.callFrame.functionName)) break;
    const b = bucket(n);
    if (!/^(server|db|shared)\//.test(b)) continue;
    const key = label(n);
    if (seen.has(key)) continue;
    seen.add(key);
    sum(inclusive, key, us);
  }
}
print("inclusive time of project functions (server/, db/, shared/):", inclusive, top);
