import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { IPYNB_MAX_BYTES, IpynbSchema } from "../../../shared/notebook/ipynb.ts";
import { IdParam } from "../../../shared/schemas/common.ts";
import {
  NotebookInfo,
  NotebookLock,
  NotebookVersion,
  NotebookVersionCreate,
  NotebookVersionList,
  VersionParams,
} from "../../../shared/schemas/notebooks.ts";
import type { Deps } from "../../deps.ts";
import { type AppEnv, auditContext, auditRefusal, requireAuth } from "../context.ts";
import { access, BODY_LIMIT_EXTENSION, json, jsonBody, problems } from "../openapi.ts";

const tags = ["notebooks"];

/**
 * A room's shared notebook over HTTP: what I may do with it (the edits themselves go through `/collab/<id>`),
 * the lock, `.ipynb` import and export, named versions. Locking, importing and restoring are audited.
 */
export function notebookRoutes(app: OpenAPIHono<AppEnv>, { notebooks, audit }: Deps): void {
  const get = createRoute({
    method: "get",
    path: "/api/v1/rooms/{id}/notebook",
    tags,
    summary: "The room's notebook (created on first use) and what I may do with it",
    ...access("rooms:use", audit),
    request: { params: IdParam },
    responses: { 200: json(NotebookInfo, "The notebook"), ...problems("unauthenticated", "forbidden", "not_found") },
  });
  app.openapi(get, async (c) => c.json(await notebooks.get(c.req.valid("param").id, requireAuth(c).user.id), 200));

  const lock = createRoute({
    method: "put",
    path: "/api/v1/rooms/{id}/notebook/lock",
    tags,
    summary: "Lock the notebook (read-only for all but owners and moderators) or unlock it; owners and moderators",
    ...access("rooms:use", audit),
    request: { params: IdParam, body: jsonBody(NotebookLock) },
    responses: { 200: json(NotebookInfo, "The notebook"), ...problems("unauthenticated", "forbidden", "not_found") },
  });
  app.openapi(lock, async (c) => {
    const { id } = c.req.valid("param");
    const { locked } = c.req.valid("json");
    const action = locked ? "notebook.lock" : "notebook.unlock";
    const info = await auditRefusal(audit, c, action, { targetType: "room", targetId: id }, {}, () =>
      notebooks.setLocked(id, requireAuth(c).user.id, locked),
    );
    await audit.append(auditContext(c), {
      action,
      outcome: "success",
      targetType: "room",
      targetId: id,
      details: { notebookId: info.id },
    });
    return c.json(info, 200);
  });

  const exportFile = createRoute({
    method: "get",
    path: "/api/v1/rooms/{id}/notebook/ipynb",
    tags,
    summary: "The notebook as a Jupyter file (nbformat 4.5)",
    ...access("rooms:use", audit),
    request: { params: IdParam },
    responses: {
      200: json(z.record(z.string(), z.unknown()), "nbformat 4.5 JSON"),
      ...problems("unauthenticated", "forbidden", "not_found"),
    },
  });
  app.openapi(exportFile, async (c) => {
    const nb = await notebooks.exportIpynb(c.req.valid("param").id, requireAuth(c).user.id);
    c.header("Content-Disposition", 'attachment; filename="notebook.ipynb"');
    return c.json(nb as Record<string, unknown>, 200);
  });

  const importFile = createRoute({
    method: "put",
    path: "/api/v1/rooms/{id}/notebook/ipynb",
    tags,
    summary: "Replace the notebook's cells with a Jupyter file's (nbformat 4; at most 2 MB and 1,000 cells)",
    ...access("rooms:use", audit),
    [BODY_LIMIT_EXTENSION]: IPYNB_MAX_BYTES,
    request: { params: IdParam, body: jsonBody(IpynbSchema) },
    responses: {
      200: json(NotebookInfo, "The notebook"),
      ...problems("unauthenticated", "forbidden", "not_found", "payload_too_large"),
    },
  });
  app.openapi(importFile, async (c) => {
    const { id } = c.req.valid("param");
    const nb = c.req.valid("json");
    const info = await auditRefusal(audit, c, "notebook.import", { targetType: "room", targetId: id }, {}, () =>
      notebooks.importIpynb(id, requireAuth(c).user.id, nb),
    );
    await audit.append(auditContext(c), {
      action: "notebook.import",
      outcome: "success",
      targetType: "room",
      targetId: id,
      details: { notebookId: info.id, cells: nb.cells.length },
    });
    return c.json(info, 200);
  });

  const list = createRoute({
    method: "get",
    path: "/api/v1/rooms/{id}/notebook/versions",
    tags,
    summary: "The notebook's named versions, newest first",
    ...access("rooms:use", audit),
    request: { params: IdParam },
    responses: {
      200: json(NotebookVersionList, "Versions"),
      ...problems("unauthenticated", "forbidden", "not_found"),
    },
  });
  app.openapi(list, async (c) =>
    c.json({ items: await notebooks.versions(c.req.valid("param").id, requireAuth(c).user.id) }, 200),
  );

  const save = createRoute({
    method: "post",
    path: "/api/v1/rooms/{id}/notebook/versions",
    tags,
    summary: "Save the notebook as it is now under a name; owners and moderators",
    ...access("rooms:use", audit),
    request: { params: IdParam, body: jsonBody(NotebookVersionCreate) },
    responses: {
      201: json(NotebookVersion, "The saved version"),
      ...problems("unauthenticated", "forbidden", "not_found"),
    },
  });
  app.openapi(save, async (c) => {
    const { id } = c.req.valid("param");
    const { name } = c.req.valid("json");
    const version = await auditRefusal(
      audit,
      c,
      "notebook.version_save",
      { targetType: "room", targetId: id },
      {},
      () => notebooks.saveVersion(id, requireAuth(c).user.id, name),
    );
    await audit.append(auditContext(c), {
      action: "notebook.version_save",
      outcome: "success",
      targetType: "room",
      targetId: id,
      details: { versionId: version.id, name: version.name },
    });
    return c.json(version, 201);
  });

  const restore = createRoute({
    method: "post",
    path: "/api/v1/rooms/{id}/notebook/versions/{versionId}/restore",
    tags,
    summary: "Make the notebook hold a saved version's cells, as a new edit connected clients follow; managers",
    ...access("rooms:use", audit),
    request: { params: VersionParams },
    responses: {
      200: json(NotebookVersion, "The restored version"),
      ...problems("unauthenticated", "forbidden", "not_found"),
    },
  });
  app.openapi(restore, async (c) => {
    const { id, versionId } = c.req.valid("param");
    const version = await auditRefusal(
      audit,
      c,
      "notebook.version_restore",
      { targetType: "room", targetId: id },
      { versionId },
      () => notebooks.restoreVersion(id, requireAuth(c).user.id, versionId),
    );
    await audit.append(auditContext(c), {
      action: "notebook.version_restore",
      outcome: "success",
      targetType: "room",
      targetId: id,
      details: { versionId, name: version.name },
    });
    return c.json(version, 200);
  });
}
