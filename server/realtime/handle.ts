import { RateLimiterRes } from "rate-limiter-flexible";
import type { z } from "zod";
import type { Ack } from "../../shared/realtime.ts";
import type { Deps } from "../deps.ts";
import { AppError, invalid, tooMany } from "../errors.ts";
import { fieldErrors, nulPaths } from "../http/problem.ts";
import type { IoSocket } from "./types.ts";

/** Takes one point of `key` from a limiter; a refusal becomes a `rate_limited` AppError with its retry delay. */
export async function spend(limiter: Deps["limiters"]["socketUser"], key: string, log: Deps["log"]): Promise<void> {
  try {
    await limiter.consume(key);
  } catch (err) {
    if (err instanceof RateLimiterRes) throw tooMany(err.msBeforeNext / 1000);
    // The store is down and its memory fallback failed too: serve the event rather than refuse everyone.
    log.error({ err }, "socket rate limiter unavailable");
  }
}

/**
 * Wraps a request-like socket event: spends one point of the caller's event budget, validates the payload
 * with its zod schema, runs the handler, and answers through the ack `{ ok: true, data } | { ok: false, error }`.
 * Unknown errors are logged and answered as `internal`; nothing a client sends can throw out of here. A call
 * without an ack function still runs.
 */
export function handle<S extends z.ZodType, T>(
  socket: IoSocket,
  deps: Pick<Deps, "log" | "limiters">,
  event: string,
  schema: S,
  run: (payload: z.infer<S>) => Promise<T>,
): (...args: unknown[]) => void {
  const { log, limiters } = deps;
  // socket.io passes the ack as the last argument, whatever came before it: take it from there.
  return (...args) => {
    const ack = typeof args.at(-1) === "function" ? args.at(-1) : undefined;
    const payload = args[0] === ack ? undefined : args[0];
    const reply = (r: Ack<T>) => {
      if (typeof ack === "function") (ack as (r: Ack<T>) => void)(r);
    };
    const work = async (): Promise<T> => {
      await spend(limiters.socketUser, socket.data.userId, log);
      const parsed = schema.safeParse(payload);
      if (!parsed.success)
        throw new AppError("invalid_input", "The payload is not valid", fieldErrors(parsed.error, "payload"));
      const nul = nulPaths(parsed.data, ["payload"]);
      if (nul.length > 0) throw invalid(nul.map((path) => ({ path, message: "must not contain U+0000" })));
      return run(parsed.data);
    };
    work().then(
      (data) => reply({ ok: true, data }),
      (err: unknown) => {
        if (err instanceof AppError) {
          reply({
            ok: false,
            error: {
              code: err.code,
              message: err.message,
              ...(err.fields ? { fields: err.fields } : {}),
              ...(err.retryAfter ? { retryAfter: err.retryAfter } : {}),
            },
          });
          return;
        }
        log.error({ err, event, userId: socket.data.userId, socketId: socket.id }, "socket handler failed");
        reply({ ok: false, error: { code: "internal", message: "Internal error" } });
      },
    );
  };
}
