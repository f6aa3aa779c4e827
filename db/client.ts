import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import { migrate } from "drizzle-orm/node-postgres/migrator";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import pg from "pg";
import { PgliteThread } from "./pglite-thread.ts";
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
    return open(pool, "postgres", () => pool.end());
  }
  // The embedded database runs in a worker thread and speaks the PostgreSQL protocol (db/pglite-thread.ts): one
  // session, so one connection, kept open (a new one would find the old one's prepared statements).
  const thread = await PgliteThread.start(options.dataDir);
  const pool = new pg.Pool({
    max: 1,
    idleTimeoutMillis: 0,
    user: "postgres",
    database: "postgres",
    stream: () => thread.connect(),
  } as pg.PoolConfig);
  return open(pool, "pglite", async () => {
    await pool.end();
    await thread.close();
  });
}

async function open(pool: pg.Pool, kind: DbHandle["kind"], close: () => Promise<void>): Promise<DbHandle> {
  // An idle client that loses its server emits 'error' on the pool; without a listener node would exit.
  pool.on("error", () => {});
  const db = drizzle({ client: pool, schema });
  try {
    await migrate(db, { migrationsFolder });
  } catch (err) {
    await close().catch(() => {});
    throw err;
  }
  return {
    db: db as unknown as Db,
    kind,
    statements: createStatements(async (name, text, values) => (await pool.query({ name, text, values })).rows),
    ping: async () => void (await db.execute(sql`select 1`)),
    close,
  };
}
