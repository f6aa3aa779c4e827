import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { Health, Ready } from "../../../shared/schemas/system.ts";
import type { Deps } from "../../deps.ts";
import { AppError } from "../../errors.ts";
import type { AppEnv } from "../context.ts";
import { json, problems, publicAccess } from "../openapi.ts";

const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error("timeout")), ms).unref())]);

/** Liveness and readiness probes, the OpenAPI document and the browsable API docs. */
export function systemRoutes(app: OpenAPIHono<AppEnv>, deps: Deps): void {
  const { dbh, redis, log } = deps;

  const healthz = createRoute({
    method: "get",
    path: "/healthz",
    tags: ["system"],
    summary: "Liveness: the process is up",
    ...publicAccess(),
    responses: { 200: json(Health, "Up") },
  });
  app.openapi(healthz, (c) => c.json({ status: "ok" as const }, 200));

  const readyz = createRoute({
    method: "get",
    path: "/readyz",
    tags: ["system"],
    summary: "Readiness: the database and, when configured, Redis answer",
    ...publicAccess(),
    responses: {
      200: json(Ready, "Ready"),
      ...problems("unavailable"),
    },
  });
  app.openapi(readyz, async (c) => {
    try {
      await within(dbh.ping(), 2000);
      if (redis) await within(redis.ping(), 2000);
    } catch (err) {
      log.warn({ err: (err as Error).message }, "readiness check failed");
      throw new AppError("unavailable", "A dependency is not reachable");
    }
    return c.json(
      { status: "ready" as const, database: dbh.kind, redis: redis ? ("up" as const) : ("not configured" as const) },
      200,
    );
  });

  app.openAPIRegistry.registerComponent("securitySchemes", "cookieAuth", {
    type: "apiKey",
    in: "cookie",
    name: deps.config.env === "production" ? "__Host-dp_session" : "dp_session",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
  });
  app.doc31("/api/v1/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "DoctorPy API",
      version: "1.0.0",
      description: "Real-time collaborative Python tutoring. Errors are RFC 9457 problem+json with a stable `code`.",
    },
    servers: [{ url: "/" }],
  });

  // Swagger UI from our own origin (no CDN): its files come from the swagger-ui-dist package.
  const uiDir = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
  const assets: Record<string, string> = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  };
  const cache: Record<string, Promise<string>> = {};
  const page = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>DoctorPy API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui.css"></head><body><div id="ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script><script src="/api/docs/init.js"></script></body></html>`;
  const init = `window.ui = SwaggerUIBundle({ url: "/api/v1/openapi.json", dom_id: "#ui", withCredentials: true });`;
  // Swagger UI sets style attributes from script; its pages alone allow inline styles.
  const docsCsp =
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'";
  app.get("/api/docs", (c) => {
    c.header("Content-Security-Policy", docsCsp);
    return c.html(page);
  });
  app.get("/api/docs/init.js", (c) => c.body(init, 200, { "Content-Type": "text/javascript; charset=utf-8" }));
  app.get("/api/docs/:file", async (c) => {
    const file = c.req.param("file");
    const type = assets[file];
    if (!type) throw new AppError("not_found");
    cache[file] ??= readFile(join(uiDir, file), "utf8");
    const body = await cache[file];
    return c.body(body, 200, { "Content-Type": type, "Cache-Control": "public, max-age=86400" });
  });
}
