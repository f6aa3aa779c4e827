/**
 * CPU accounting over one or more windows (bench/tutor.ts measures its two servers in alternating windows):
 * the CPU time of each server child and of this process, how long their event loops waited for a CPU while
 * ready to run, and the machine's stolen CPU time.
 */

import { readFileSync } from "node:fs";
import { type IntervalHistogram, monitorEventLoopDelay } from "node:perf_hooks";
import type { ServerChild } from "./child.ts";
import { machineTicks, selfCpuMicros } from "./realtime.ts";

/**
 * How long the main thread of process `pid` (a Node process's event loop) has waited so far for a CPU while it
 * was ready to run, in ms: the second field of Linux `/proc/<pid>/schedstat` (scheduler clock, ns). On a shared
 * machine, this is the part of a latency that other work on the same cores caused. Null where the kernel does
 * not tell.
 */
export function runQueueWaitMs(pid: number | "self"): number | null {
  try {
    const ns = Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").trim().split(/\s+/)[1]);
    return Number.isFinite(ns) ? ns / 1e6 : null;
  } catch {
    return null;
  }
}

export interface CpuReport {
  /** CPU use of each server child, % of one core */
  server: number[];
  /** CPU use of this process, % of one core */
  self: number;
  /** time each server's event loop, and this process's, waited for a CPU while ready, % of the windows */
  serverWait: number[];
  selfWait: number;
  /** share of the machine's CPU time the hypervisor gave to other guests, % */
  steal: number;
  /** this process's event-loop delay, p99 of its worst window, ms: a receipt it timed waited that long too */
  selfLagP99: number;
  /** the same, the longest of any window, ms */
  selfLagMax: number;
}

interface Snapshot {
  at: number;
  server: number[];
  self: number;
  serverWait: (number | null)[];
  selfWait: number | null;
  ticks: ReturnType<typeof machineTicks>;
}

export class CpuMeter {
  private wallMs = 0;
  private readonly server: number[];
  private self = 0;
  private readonly serverWait: number[];
  private selfWait = 0;
  private waitKnown = true;
  private ticks = { total: 0, steal: 0 };
  private open: Snapshot | undefined;
  /** this process's event-loop delay: each window has its own monitor; its p99 and max are kept */
  private windowLag: IntervalHistogram | undefined;
  private lagP99 = Number.NaN;
  private lagMax = Number.NaN;

  constructor(private readonly children: ServerChild[]) {
    this.server = children.map(() => 0);
    this.serverWait = children.map(() => 0);
  }

  private async snapshot(): Promise<Snapshot> {
    // A busy server answers late: its event loop serves its sockets first.
    const server = await Promise.all(this.children.map((c) => c.cpuMicros(60_000)));
    return {
      at: performance.now(),
      server,
      self: selfCpuMicros(),
      serverWait: this.children.map((c) => runQueueWaitMs(c.pid)),
      selfWait: runQueueWaitMs("self"),
      ticks: machineTicks(),
    };
  }

  async start(): Promise<void> {
    this.open = await this.snapshot();
    this.windowLag = monitorEventLoopDelay({ resolution: 1 });
    this.windowLag.enable();
  }

  async stop(): Promise<void> {
    const a = this.open;
    if (!a) throw new Error("CpuMeter.stop without start");
    this.open = undefined;
    if (this.windowLag) {
      this.windowLag.disable();
      if (this.windowLag.count > 0) {
        this.lagP99 = Math.max(this.windowLag.percentile(99) / 1e6, Number.isNaN(this.lagP99) ? 0 : this.lagP99);
        this.lagMax = Math.max(this.windowLag.max / 1e6, Number.isNaN(this.lagMax) ? 0 : this.lagMax);
      }
      this.windowLag = undefined;
    }
    const b = await this.snapshot();
    this.wallMs += b.at - a.at;
    b.server.forEach((v, k) => {
      this.server[k] = (this.server[k] as number) + v - (a.server[k] as number);
    });
    this.self += b.self - a.self;
    b.serverWait.forEach((v, k) => {
      const from = a.serverWait[k];
      if (v === null || from === null || from === undefined) this.waitKnown = false;
      else this.serverWait[k] = (this.serverWait[k] as number) + v - from;
    });
    if (b.selfWait === null || a.selfWait === null) this.waitKnown = false;
    else this.selfWait += b.selfWait - a.selfWait;
    if (a.ticks && b.ticks) {
      this.ticks.total += b.ticks.total - a.ticks.total;
      this.ticks.steal += b.ticks.steal - a.ticks.steal;
    }
  }

  report(): CpuReport {
    const pctOfWall = (ms: number) => (this.waitKnown && this.wallMs > 0 ? (100 * ms) / this.wallMs : Number.NaN);
    return {
      server: this.server.map((micros) => micros / 10 / this.wallMs),
      self: this.self / 10 / this.wallMs,
      serverWait: this.serverWait.map(pctOfWall),
      selfWait: pctOfWall(this.selfWait),
      steal: this.ticks.total > 0 ? (100 * this.ticks.steal) / this.ticks.total : Number.NaN,
      selfLagP99: this.lagP99,
      selfLagMax: this.lagMax,
    };
  }
}
