import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { AppSettings, AppSettingsPatch } from "../../../shared/schemas/rooms.ts";
import type { Deps } from "../../deps.ts";
import { type AppEnv, auditContext } from "../context.ts";
import { access, json, jsonBody, problems } from "../openapi.ts";

const tags = ["admin"];

/** Admin: product settings changed at runtime (whether learners may create rooms, the tutor's limits). */
export function settingsRoutes(app: OpenAPIHono<AppEnv>, { settings, audit }: Deps): void {
  const read = createRoute({
    method: "get",
    path: "/api/v1/admin/settings",
    tags,
    summary: "Read the product settings",
    ...access("settings:manage", audit),
    responses: { 200: json(AppSettings, "The settings"), ...problems("unauthenticated", "forbidden") },
  });
  app.openapi(read, async (c) => c.json(await settings.get(), 200));

  const patch = createRoute({
    method: "patch",
    path: "/api/v1/admin/settings",
    tags,
    summary: "Change product settings (only the fields given)",
    ...access("settings:manage", audit),
    request: { body: jsonBody(AppSettingsPatch) },
    responses: { 200: json(AppSettings, "The settings after the change"), ...problems("unauthenticated", "forbidden") },
  });
  app.openapi(patch, async (c) => {
    const change = c.req.valid("json");
    const before = await settings.get();
    const after = await settings.update(change);
    await audit.append(auditContext(c), {
      action: "admin.settings_update",
      outcome: "success",
      details: { from: before, to: after },
    });
    return c.json(after, 200);
  });
}
