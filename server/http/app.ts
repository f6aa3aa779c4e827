import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { IPYNB_MAX_BYTES } from "../../shared/notebook/ipynb.ts";
import type { Deps } from "../deps.ts";
import { AppError, invalid } from "../errors.ts";
import type { AppEnv } from "./context.ts";
import { resolveAuth } from "./middleware/auth.ts";
import { rateLimit } from "./middleware/rate-limit.ts";
import { requestContext } from "./middleware/request-context.ts";
import { corsPolicy, csrfProtection, securityHeaders } from "./middleware/security.ts";
import { fieldErrors, nulPaths, problemResponse } from "./problem.ts";
import { adminRoutes } from "./routes/admin.ts";
import { authRoutes } from "./routes/auth.ts";
import { clientRoutes } from "./routes/client.ts";
import { lessonRoutes } from "./routes/lessons.ts";
import { notebookRoutes } from "./routes/notebooks.ts";
import { roomRoutes } from "./routes/rooms.ts";
import { sessionRoutes } from "./routes/sessions.ts";
import { settingsRoutes } from "./routes/settings.ts";
import { systemRoutes } from "./routes/system.ts";
import { tutorRoutes } from "./routes/tutor.ts";

/**
 * The HTTP application. Order matters: context and headers first, the body limit; then for /api: CORS, the
 * per-IP limit, authentication, CSRF, the per-user limit; each route then checks its permission and
 * validates its input against the zod schemas of shared/ before its handler runs.
 */
export function createApp(deps: Deps): OpenAPIHono<AppEnv> {
  const { config, log } = deps;
  const production = config.env === "production";
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw invalid(fieldErrors(result.error, result.target));
      // PostgreSQL text cannot hold U+0000: refuse it as invalid input rather than fail in the database.
      const nul = nulPaths(result.data, [result.target === "json" ? "body" : result.target]);
      if (nul.length) throw invalid(nul.map((path) => ({ path, message: "must not contain U+0000" })));
    },
  });

  app.use("*", requestContext(log, config.trustProxy));
  app.use("*", securityHeaders(production));
  app.use("/api/*", corsPolicy(config.corsOrigins));
  const limit = (maxSize: number) =>
    bodyLimit({
      maxSize,
      onError: () => {
        // node-server cannot drain an opened body: close the connection rather than reuse a broken one.
        const err = new AppError("payload_too_large", `The body must be at most ${maxSize} bytes`);
        throw Object.assign(err, { headers: { Connection: "close" } });
      },
    });
  const limitBody = limit(config.bodyLimit);
  // A notebook file is the one body allowed to be larger.
  const limitNotebook = limit(IPYNB_MAX_BYTES);
  // GET and HEAD handlers never read a body; skipping the check keeps them on node-server's fast path.
  app.use("*", (c, next) => {
    if (c.req.method === "GET" || c.req.method === "HEAD") return next();
    return (c.req.path.endsWith("/notebook/ipynb") ? limitNotebook : limitBody)(c, next);
  });
  app.use("/api/*", rateLimit(deps.limiters.ip, "ip", log));
  app.use("/api/*", resolveAuth(deps.sessions, deps.tokens, production));
  app.use("/api/*", csrfProtection(config.corsOrigins));
  app.use("/api/*", rateLimit(deps.limiters.user, "user", log));

  systemRoutes(app, deps);
  authRoutes(app, deps);
  sessionRoutes(app, deps);
  adminRoutes(app, deps);
  settingsRoutes(app, deps);
  roomRoutes(app, deps);
  lessonRoutes(app, deps);
  tutorRoutes(app, deps);
  notebookRoutes(app, deps);
  clientRoutes(app, config.clientDir);

  app.notFound((c) => problemResponse(c, new AppError("not_found", "No such route"), log, c.get("meta")?.requestId));
  app.onError((err, c) => problemResponse(c, err, log, c.get("meta")?.requestId));
  return app;
}
