import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ZodError } from "zod";
import { ERROR_TITLES, type FieldError } from "../../shared/errors.ts";
import type { Problem } from "../../shared/schemas/common.ts";
import { AppError } from "../errors.ts";
import type { Logger } from "../log.ts";

/** zod issues as `{ path: "body.email", message }`, prefixed by where the value came from. */
export function fieldErrors(error: ZodError, target: string): FieldError[] {
  return error.issues.slice(0, 20).map((i) => ({
    path: [target === "json" ? "body" : target, ...i.path.map(String)].join("."),
    message: i.message,
  }));
}

/**
 * Dotted paths of the strings in `value` that contain U+0000. PostgreSQL text cannot hold it, so every input
 * (HTTP and socket) refuses it as invalid instead of failing in the database.
 */
export function nulPaths(value: unknown, path: string[], out: string[] = []): string[] {
  if (typeof value === "string") {
    if (value.includes("\u0000")) out.push(path.join("."));
  } else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) nulPaths(v, [...path, k], out);
  }
  return out;
}

function fromHttpException(err: HTTPException): AppError {
  switch (err.status) {
    case 400:
      return new AppError("invalid_input", err.message || undefined);
    case 413:
      return new AppError("payload_too_large");
    case 415:
      return new AppError("unsupported_media_type");
    case 401:
      return new AppError("unauthenticated");
    case 403:
      return new AppError("forbidden");
    case 404:
      return new AppError("not_found");
    default:
      return new AppError(err.status >= 500 ? "internal" : "invalid_input");
  }
}

/**
 * The one place where errors become responses: RFC 9457 problem+json with our stable code and the request id.
 * Unknown errors are logged with the request id and answered as `internal` without details.
 */
export function problemResponse(c: Context, err: unknown, log: Logger, requestId: string | undefined): Response {
  let e: AppError;
  if (err instanceof AppError) e = err;
  else if (err instanceof HTTPException) e = fromHttpException(err);
  else {
    log.error({ err, requestId }, "unhandled error");
    e = new AppError("internal");
  }
  const body: Problem = {
    type: `urn:doctorpy:problem:${e.code}`,
    title: ERROR_TITLES[e.code],
    status: e.status,
    code: e.code,
    ...(e.message !== ERROR_TITLES[e.code] ? { detail: e.message } : {}),
    ...(requestId ? { requestId } : {}),
    ...(e.fields?.length ? { errors: e.fields } : {}),
    ...(e.retryAfter ? { retryAfter: e.retryAfter } : {}),
  };
  const headers: Record<string, string> = { "Content-Type": "application/problem+json" };
  if (e.retryAfter) headers["Retry-After"] = String(e.retryAfter);
  const extra = (err as { headers?: Record<string, string> }).headers;
  if (extra) Object.assign(headers, extra);
  return c.body(JSON.stringify(body), e.status as ContentfulStatusCode, headers);
}
