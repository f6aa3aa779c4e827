import type { z } from "zod";
import { type FieldError, Problem } from "../../../shared/index.ts";

export const API_BASE = "/api/v1";

/** A failed API call: the problem+json `code`, HTTP status and offending fields, ready to translate. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly fields: FieldError[];
  readonly retryAfter: number | undefined;
  readonly requestId: string | undefined;

  constructor(init: {
    status: number;
    code: string;
    title?: string;
    fields?: FieldError[];
    retryAfter?: number;
    requestId?: string;
  }) {
    super(init.title ?? init.code);
    this.name = "ApiError";
    this.status = init.status;
    this.code = init.code;
    this.fields = init.fields ?? [];
    this.retryAfter = init.retryAfter;
    this.requestId = init.requestId;
  }
}

type Method = "GET" | "POST" | "PATCH" | "DELETE";
export type Query = Record<string, string | number | boolean | null | undefined>;

let onUnauthenticated: ((error: ApiError) => void) | undefined;
/** Called when any request answers 401 `unauthenticated` or `session_expired` (the session store logs out). */
export function setUnauthenticatedHandler(handler: (error: ApiError) => void): void {
  onUnauthenticated = handler;
}

function statusCode(status: number): string {
  if (status === 404) return "not_found";
  if (status === 401) return "unauthenticated";
  if (status === 403) return "forbidden";
  if (status === 429) return "rate_limited";
  if (status === 503) return "unavailable";
  return status >= 500 ? "internal" : "bad_response";
}

function retryAfterHeader(res: Response): number | undefined {
  const raw = res.headers.get("Retry-After");
  if (!raw) return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(raw);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

async function toError(res: Response): Promise<ApiError> {
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  const parsed = Problem.safeParse(body);
  if (!parsed.success) {
    return new ApiError({ status: res.status, code: statusCode(res.status), retryAfter: retryAfterHeader(res) });
  }
  const p = parsed.data;
  return new ApiError({
    status: p.status,
    code: p.code,
    title: p.title,
    fields: p.errors,
    retryAfter: p.retryAfter ?? retryAfterHeader(res),
    requestId: p.requestId ?? res.headers.get("X-Request-Id") ?? undefined,
  });
}

function buildUrl(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
  }
  const search = params.toString();
  return `${API_BASE}${path}${search ? `?${search}` : ""}`;
}

async function call(method: Method, path: string, body?: unknown, query?: Query): Promise<Response> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(buildUrl(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch {
    throw new ApiError({ status: 0, code: "network" });
  }
  if (res.ok) return res;
  const error = await toError(res);
  if (error.status === 401 && (error.code === "unauthenticated" || error.code === "session_expired")) {
    onUnauthenticated?.(error);
  }
  throw error;
}

async function parse<T>(res: Response, schema: z.ZodType<T>): Promise<T> {
  let data: unknown;
  try {
    data = await res.json();
  } catch {
    throw new ApiError({ status: res.status, code: "bad_response" });
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success) throw new ApiError({ status: res.status, code: "bad_response" });
  return parsed.data;
}

/** GET a JSON resource and validate it against `schema`. */
export async function getJson<T>(path: string, schema: z.ZodType<T>, query?: Query): Promise<T> {
  return parse(await call("GET", path, undefined, query), schema);
}

/** Send `body` (if any) and validate the JSON answer against `schema`. */
export async function sendJson<T>(method: Method, path: string, schema: z.ZodType<T>, body?: unknown): Promise<T> {
  return parse(await call(method, path, body), schema);
}

/** Send a request whose answer has no body (204). */
export async function send(method: Method, path: string, body?: unknown): Promise<void> {
  await call(method, path, body);
}
