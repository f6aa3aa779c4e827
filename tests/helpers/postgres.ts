import { randomBytes } from "node:crypto";
import pg from "pg";

/**
 * When TEST_DATABASE_URL points at a PostgreSQL server, every test server gets a database of its own, created
 * here and dropped on close, so that runs never share state. Without it, tests use in-memory PGlite.
 */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || undefined;

/** Multi-node tests need one database for several servers: PostgreSQL, always (it runs on every machine). */
export const CLUSTER_DATABASE_URL = TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

export async function createTestDatabase(adminUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `dp_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
