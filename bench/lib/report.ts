import { existsSync } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { cpus, loadavg, release, type } from "node:os";
import { dirname } from "node:path";
import type { Measurement } from "./load.ts";

export interface Machine {
  cpu: string;
  cores: number;
  node: string;
  os: string;
  date: string;
  /** 1-minute load average when the run started: other work on the machine skews every number */
  load: number;
}

export function machineFacts(): Machine {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? "unknown CPU",
    cores: list.length,
    node: process.version,
    os: `${type()} ${release()}`,
    date: new Date().toISOString(),
    load: loadavg()[0] ?? 0,
  };
}

export const describeMachine = (m: Machine) => `${m.cpu}, ${m.cores} cores, Node ${m.node}, ${m.os}`;

const fmtInt = (n: number) => Math.round(n).toLocaleString("en-US");

/** The results as a markdown table; `baseline` is the req/s of the bare route the ratio column divides by. */
export function markdownTable(rows: Measurement[], baseline: number): string {
  const lines = [
    "| scenario | req/s (mean) | p50 ms | p99 ms | errors / non-2xx | req/s vs bare | server CPU µs/req |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of rows) {
    const ratio = baseline > 0 ? `${(r.reqPerSec / baseline).toFixed(2)}×` : "n/a";
    const cpu = r.cpuMicrosPerReq === null ? "n/a" : fmtInt(r.cpuMicrosPerReq);
    lines.push(
      `| ${r.scenario} | ${fmtInt(r.reqPerSec)} | ${r.p50} | ${r.p99} | ${r.errors} / ${r.non2xx} | ${ratio} | ${cpu} |`,
    );
  }
  return lines.join("\n");
}

/**
 * Replaces the `heading` section of a markdown file (from that line to the next `## ` heading or the end),
 * or appends it; creates the file with `intro` when missing. Other sections are kept as they are.
 */
export async function writeSection(file: string, heading: string, body: string, intro: string): Promise<void> {
  const section = `${heading}\n\n${body.trim()}\n`;
  let text = existsSync(file) ? await readFile(file, "utf8") : `${intro.trim()}\n`;
  const lines = text.split("\n");
  const start = lines.findIndex((l) => l.trim() === heading);
  if (start === -1) {
    text = `${text.replace(/\s*$/, "")}\n\n${section}`;
  } else {
    let end = lines.findIndex((l, i) => i > start && /^##\s/.test(l));
    if (end === -1) end = lines.length;
    const before = lines.slice(0, start).join("\n").replace(/\s*$/, "");
    const after = lines.slice(end).join("\n").replace(/^\s*/, "");
    text = `${before ? `${before}\n\n` : ""}${section}${after ? `\n${after}` : ""}`;
  }
  if (!text.endsWith("\n")) text += "\n";
  await mkdir(dirname(file), { recursive: true });
  // Write then rename, so that a reader never sees half a file.
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

/** Writes `body` as the `heading` section of docs/BENCHMARKS.md, creating the file with its intro if needed. */
export async function publishSection(file: string, heading: string, body: string, machine: Machine): Promise<void> {
  await writeSection(
    file,
    heading,
    body,
    [
      "# Benchmarks",
      "",
      `Numbers measured on ${describeMachine(machine)} unless a section says otherwise, ` +
        "each with the command to reproduce it. Every section is rewritten by its own script; the others are kept.",
    ].join("\n"),
  );
}
