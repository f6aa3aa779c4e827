import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import { sql } from "drizzle-orm";
import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import { migrate as migratePg } from "drizzle-orm/node-postgres/migrator";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import pg from "pg";
import * as schema from "./schema.ts";
import { createStatements, type Statements } from "./statements.ts";

/** The drizzle database, whichever driver is underneath. */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface DbHandle {
  db: Db;
  kind: "pglite" | "postgres";
  /** the hot statements, straight to the driver */
  statements: Statements;
  /** cheap round trip for readiness checks */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface DbOptions {
  /** `postgres://...`: use PostgreSQL through `pg`; otherwise PGlite */
  databaseUrl?: string | undefined;
  /** PGlite data directory, or `memory` for an in-memory database (tests) */
  dataDir: string;
  /** pool size for PostgreSQL */
  poolSize?: number;
}

const migrationsFolder = fileURLToPath(new URL("./migrations", import.meta.url));

/** Opens the database and applies every pending migration. */
export async function openDb(options: DbOptions): Promise<DbHandle> {
  if (options.databaseUrl) {
    const pool = new pg.Pool({ connectionString: options.databaseUrl, max: options.poolSize ?? 10 });
    // An idle client that loses its server emits 'error' on the pool; without a listener node would exit.
    pool.on("error", () => {});
    const db = drizzlePg({ client: pool, schema });
    await migratePg(db, { migrationsFolder });
    return {
      db: db as unknown as Db,
      kind: "postgres",
      statements: createStatements(async (name, text, values) => (await pool.query({ name, text, values })).rows),
      ping: async () => void (await db.execute(sql`select 1`)),
      close: () => pool.end(),
    };
  }
  const client = options.dataDir === "memory" ? new PGlite() : new PGlite(options.dataDir);
  // PGlite runs each query synchronously on this thread, and a queued query starts as soon as the previous one
  // resolves, without going back to the event loop: a burst of queries would hold every socket for its whole
  // length. Each query first waits for the current I/O phase to end, so sockets are served in between.
  const query = client.query.bind(client);
  client.query = (async (...args: Parameters<typeof query>) => {
    await new Promise((resolve) => setImmediate(resolve));
    return query(...args);
  }) as typeof client.query;
  const db = drizzlePglite({ client, schema });
  await migratePglite(db, { migrationsFolder });
  return {
    db: db as unknown as Db,
    kind: "pglite",
    statements: createStatements(
      async (_name, text, values) => (await client.query<Record<string, unknown>>(text, values)).rows,
    ),
    ping: async () => void (await db.execute(sql`select 1`)),
    close: () => client.close(),
  };
}
