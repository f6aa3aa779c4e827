import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { serveStatic } from "@hono/node-server/serve-static";
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../context.ts";

/**
 * The built Svelte client (`vite build` output): its files, and `index.html` for every other GET that is not
 * an API route, so that client-side routes survive a reload.
 */
export function clientRoutes(app: OpenAPIHono<AppEnv>, clientDir: string): void {
  const root = resolve(clientDir);
  const index = join(root, "index.html");
  // Without a build (tests, `npm run dev`) there is nothing to serve, and serveStatic would warn on every request.
  if (!existsSync(root)) return;
  app.use(
    "/assets/*",
    serveStatic({
      root,
      onFound: (_path, c) => c.header("Cache-Control", "public, max-age=31536000, immutable"),
    }),
  );
  app.use("*", serveStatic({ root }));
  let html: Promise<string> | undefined;
  app.get("*", async (c, next) => {
    if (c.req.path.startsWith("/api/") || !existsSync(index)) return next();
    html ??= readFile(index, "utf8");
    c.header("Cache-Control", "no-cache");
    return c.html(await html);
  });
}
