import { readdirSync, readFileSync } from "node:fs";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import * as Y from "yjs";
import { Merger } from "../../server/notebooks/merger.ts";
import { waitFor } from "../helpers/factories.ts";

const merger = new Merger(pino({ level: "silent" }));
afterAll(() => merger.close());

/** The nice value of each thread of this process (field 19 of /proc/self/task/<tid>/stat). */
function threadNiceValues(): number[] {
  return readdirSync("/proc/self/task").map((tid) => {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[16]);
  });
}

describe("the compaction merger", () => {
  it("replays updates into one state that holds every edit", async () => {
    const doc = new Y.Doc();
    const updates: Uint8Array[] = [];
    doc.on("update", (u: Uint8Array) => updates.push(u));
    const text = doc.getText("t");
    for (let i = 0; i < 200; i++) text.insert(text.length, String(i % 10));
    text.delete(0, 50);
    const state = await merger.merge(updates);
    const replayed = new Y.Doc();
    Y.applyUpdate(replayed, state);
    expect(replayed.getText("t").toString()).toBe(text.toString());
    expect(state.byteLength).toBeLessThan(updates.reduce((n, u) => n + u.byteLength, 0));
  });

  it.runIf(process.platform === "linux")(
    "runs in a thread of lower priority than the event loop, started before its first merge",
    async () => {
      const fresh = new Merger(pino({ level: "silent" }));
      try {
        const before = threadNiceValues().filter((n) => n === 10).length;
        fresh.warm();
        await waitFor(() => threadNiceValues().filter((n) => n === 10).length > before, 5000);
        // The main thread itself keeps its priority.
        expect(Number(readFileSync("/proc/self/stat", "utf8").split(") ")[1]?.split(" ")[16])).toBe(0);
      } finally {
        await fresh.close();
      }
    },
  );
});
