import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDb } from "../../db/client.ts";
import { PgliteThread } from "../../db/pglite-thread.ts";

/** The embedded database in its worker thread, spoken to through `pg` (db/pglite-thread.ts). */
describe("PGlite in a worker thread", () => {
  let thread: PgliteThread;
  beforeAll(async () => {
    thread = await PgliteThread.start("memory");
  });
  afterAll(() => thread.close());

  const client = async () => {
    const c = new pg.Client({
      user: "postgres",
      database: "postgres",
      stream: () => thread.connect(),
    } as pg.ClientConfig);
    await c.connect();
    return c;
  };

  it("leaves the event loop free while a statement runs", async () => {
    const c = await client();
    try {
      let last = performance.now();
      let worstGap = 0;
      const ticker = setInterval(() => {
        const now = performance.now();
        worstGap = Math.max(worstGap, now - last);
        last = now;
      }, 2);
      const started = performance.now();
      // Some hundreds of milliseconds of WebAssembly: on the calling thread, no timer would fire meanwhile.
      const { rows } = await c.query("select count(*)::int as n from generate_series(1, 2000000) g where g % 7 = 0");
      const took = performance.now() - started;
      clearInterval(ticker);
      expect(rows[0].n).toBe(285714);
      expect(took).toBeGreaterThan(100);
      expect(worstGap).toBeLessThan(took / 2);
    } finally {
      await c.end();
    }
  });

  it("runs prepared statements, parameters and errors through the wire protocol", async () => {
    const c = await client();
    try {
      const q = { name: "dp_test_add", text: "select $1::int + $2::int as sum, $3::text as label" };
      expect((await c.query({ ...q, values: [2, 3, "é😀"] })).rows).toEqual([{ sum: 5, label: "é😀" }]);
      expect((await c.query({ ...q, values: [40, 2, "x"] })).rows).toEqual([{ sum: 42, label: "x" }]);
      await expect(c.query("select * from no_such_table")).rejects.toThrow(/no_such_table/);
      // the session is usable after an error
      expect((await c.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
    } finally {
      await c.end();
    }
  });

  it("starts new WAL segments without writing them full of zeros first (a 40–50 ms stall each)", async () => {
    const c = await client();
    try {
      expect((await c.query("show wal_init_zero")).rows).toEqual([{ wal_init_zero: "off" }]);
    } finally {
      await c.end();
    }
  });

  it("rolls back what a connection that died inside a transaction left open", async () => {
    const a = await client();
    a.on("error", () => {}); // its connection is cut below, on purpose
    await a.query("create table if not exists t_orphan (v int)");
    await a.query("begin");
    await a.query("insert into t_orphan values (1)");
    await a.query({ name: "dp_left_behind", text: "select 1" });
    // the connection is cut without a commit or a Terminate
    (a as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const b = await client();
    try {
      expect((await b.query("select count(*)::int as n from t_orphan")).rows[0].n).toBe(0);
      // its prepared statements are gone too: the same name can be prepared again
      expect((await b.query({ name: "dp_left_behind", text: "select 2 as two" })).rows).toEqual([{ two: 2 }]);
    } finally {
      await b.end();
    }
  });
});

describe("the embedded database on disk", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "doctorpy-pglite-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("keeps what was written across a close and a reopen", async () => {
    const first = await openDb({ dataDir: join(dir, "db") });
    expect(first.kind).toBe("pglite");
    await first.db.execute(sql`create table kept (v text)`);
    await first.db.execute(sql`insert into kept values ('still here')`);
    await first.close();
    const second = await openDb({ dataDir: join(dir, "db") });
    try {
      const res = (await second.db.execute(sql`select v from kept`)) as { rows: unknown[] };
      expect(res.rows).toEqual([{ v: "still here" }]);
    } finally {
      await second.close();
    }
  });

  it("refuses to start, with the reason, when the directory cannot hold a database", async () => {
    const file = join(dir, "not-a-directory");
    writeFileSync(file, "x");
    await expect(openDb({ dataDir: join(file, "db") })).rejects.toThrow(/PGlite could not open|ENOTDIR|exited/);
  });
});
