import { pino } from "pino";
import type { Config } from "../../server/config.ts";
import { createLogger } from "../../server/log.ts";
import { type RunningServer, startServer as start } from "../../server/server.ts";
import { testConfig } from "./config.ts";
import { createTestDatabase, TEST_DATABASE_URL } from "./postgres.ts";

export interface TestServer extends RunningServer {
  config: Config;
}

/**
 * A real DoctorPy server on port 0: in-memory PGlite, or a fresh PostgreSQL database when TEST_DATABASE_URL
 * is set (unless the overrides name a database themselves). `close()` stops it and drops that database.
 */
export async function startServer(overrides: Partial<Config> = {}): Promise<TestServer> {
  let drop: (() => Promise<void>) | undefined;
  let databaseUrl = overrides.databaseUrl;
  if (!("databaseUrl" in overrides) && TEST_DATABASE_URL) {
    const created = await createTestDatabase(TEST_DATABASE_URL);
    databaseUrl = created.url;
    drop = created.drop;
  }
  const config = testConfig({ ...overrides, databaseUrl });
  // Logs asked for by TEST_LOG_LEVEL are written synchronously (none is lost when a test ends the process), to
  // stderr or to the file TEST_LOG_FILE names.
  const destination =
    config.logLevel === "silent"
      ? undefined
      : pino.destination({ dest: process.env.TEST_LOG_FILE ?? 2, sync: true, append: true });
  const running = await start(config, createLogger(config.logLevel, destination));
  return {
    ...running,
    config,
    async close(graceMs?: number) {
      await running.close(graceMs);
      await drop?.();
    },
  };
}
