import autocannon, { type Result } from "autocannon";

export interface LoadOptions {
  connections: number;
  /** seconds of measurement */
  duration: number;
  /** seconds of an unrecorded run first (JIT, caches, connection set-up) */
  warmup: number;
}

export interface Measurement {
  scenario: string;
  reqPerSec: number;
  p50: number;
  p99: number;
  /** socket errors and timeouts */
  errors: number;
  non2xx: number;
  total: number;
  /** CPU time of the server process per completed request, in microseconds (robust to a busy machine) */
  cpuMicrosPerReq: number | null;
  statusCodes: Record<string, number>;
}

/**
 * Loads one URL: a warm-up run, then the measured run. `serverCpu`, when given, reads the server process's CPU
 * time (µs) before and after the measured run.
 */
export async function measure(
  scenario: string,
  url: string,
  headers: Record<string, string>,
  opts: LoadOptions,
  serverCpu?: () => Promise<number>,
): Promise<Measurement> {
  const base = { url, method: "GET" as const, headers, connections: opts.connections, timeout: 10 };
  if (opts.warmup > 0) await autocannon({ ...base, duration: opts.warmup });
  const cpuBefore = await serverCpu?.();
  const r: Result = await autocannon({ ...base, duration: opts.duration });
  const cpuAfter = await serverCpu?.();
  return {
    scenario,
    reqPerSec: r.requests.mean,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
    total: r.requests.total,
    cpuMicrosPerReq:
      cpuBefore !== undefined && cpuAfter !== undefined && r.requests.total > 0
        ? (cpuAfter - cpuBefore) / r.requests.total
        : null,
    statusCodes: Object.fromEntries(Object.entries(r.statusCodeStats).map(([code, s]) => [code, s.count])),
  };
}
