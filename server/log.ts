import { type Logger, pino } from "pino";

export type { Logger };

/**
 * JSON logs. Secrets never reach them: we log no bodies, and the redaction list covers the places where a
 * credential could hide if someone logs a request or a config object by mistake.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: {
        paths: [
          "password",
          "*.password",
          "*.currentPassword",
          "*.newPassword",
          "token",
          "*.token",
          "secrets",
          "*.secrets",
          "headers.authorization",
          "headers.cookie",
          '*.headers["set-cookie"]',
          "*.headers.authorization",
          "*.headers.cookie",
        ],
        censor: "[redacted]",
      },
    },
    // Buffered, asynchronous writes to stdout (pino's production advice): a synchronous write per request
    // costs more than the rest of a small request. Whoever exits the process calls `log.flush()` first.
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
