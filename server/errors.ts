import { ERROR_CODES, ERROR_TITLES, type ErrorCode, type FieldError } from "../shared/errors.ts";

/** The one error type of the server: a stable code (listed in shared/errors.ts) and its HTTP status. */
export class AppError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly fields?: FieldError[],
    /** seconds before a retry makes sense (rate limits, lockouts) */
    readonly retryAfter?: number,
  ) {
    super(message ?? ERROR_TITLES[code]);
    this.name = "AppError";
    this.status = ERROR_CODES[code];
  }
}

export const invalid = (fields: FieldError[], message = "The request is not valid") =>
  new AppError("invalid_input", message, fields);
export const unauthenticated = (message?: string) => new AppError("unauthenticated", message);
export const forbidden = (message?: string) => new AppError("forbidden", message);
export const notFound = (what = "Resource") => new AppError("not_found", `${what} not found`);
export const conflict = (message: string, fields?: FieldError[]) => new AppError("conflict", message, fields);
export const tooMany = (retryAfter: number, code: "rate_limited" | "locked_out" = "rate_limited") =>
  new AppError(code, undefined, undefined, Math.max(1, Math.ceil(retryAfter)));
