import { ConfigError, loadConfig } from "./config.ts";
import { createLogger } from "./log.ts";
import { startServer } from "./server.ts";

/** Composition root: config -> deps -> app -> listen, and a graceful stop on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  // Logs are buffered: flush them before the process goes.
  const exit = (code: number) => log.flush(() => process.exit(code));
  const running = await startServer(config, log).catch((err: Error) => {
    log.fatal({ err: err.message }, "could not start");
    exit(1);
    return new Promise<never>(() => {});
  });
  log.info(
    { url: running.url, database: running.deps.dbh.kind, redis: Boolean(config.redisUrl) },
    "DoctorPy is listening",
  );

  const stop = (signal: string) => {
    log.info({ signal }, "shutting down: finishing in-flight requests");
    const force = setTimeout(() => {
      log.error("shutdown took too long; exiting");
      exit(1);
    }, 15_000);
    running.close().then(
      () => {
        clearTimeout(force);
        log.info("stopped cleanly");
        exit(0);
      },
      (err: Error) => {
        log.error({ err: err.message }, "error while stopping");
        exit(1);
      },
    );
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
}

void main();
