import { Writable } from "node:stream";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { describe, expect, it } from "vitest";
import { AppError } from "../../server/errors.ts";
import { problemResponse } from "../../server/http/problem.ts";
import { createLogger } from "../../server/log.ts";

function appThrowing(err: unknown) {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const log = createLogger("info", sink);
  const app = new Hono();
  app.get("/", () => {
    throw err;
  });
  app.onError((e, c) => problemResponse(c, e, log, "req-123"));
  return { app, lines };
}

describe("problemResponse", () => {
  it("answers unknown errors as 500 internal without details, and logs them with the request id", async () => {
    const { app, lines } = appThrowing(new Error("database password is hunter2"));
    const res = await app.request("/");
    expect(res.status).toBe(500);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    const text = await res.text();
    expect(text).not.toMatch(/hunter2/);
    expect(JSON.parse(text)).toMatchObject({ code: "internal", status: 500, requestId: "req-123" });
    expect(lines.join("")).toMatch(/"requestId":"req-123"/);
  });

  it.each([
    [400, "invalid_input"],
    [401, "unauthenticated"],
    [403, "forbidden"],
    [404, "not_found"],
    [413, "payload_too_large"],
    [415, "unsupported_media_type"],
    [418, "invalid_input"],
    [502, "internal"],
  ] as const)("maps an HTTPException %i to %s", async (status, code) => {
    const { app } = appThrowing(new HTTPException(status, { message: "" }));
    const res = await app.request("/");
    const body = (await res.json()) as { code: string; status: number };
    expect(body.code).toBe(code);
    expect(res.status).toBe(body.status);
  });

  it("carries Retry-After and the fields of an AppError", async () => {
    const { app } = appThrowing(new AppError("rate_limited", undefined, [{ path: "body.x", message: "m" }], 7));
    const res = await app.request("/");
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("7");
    expect(await res.json()).toMatchObject({ retryAfter: 7, errors: [{ path: "body.x", message: "m" }] });
  });
});
