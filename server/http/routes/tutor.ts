import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { IdParam } from "../../../shared/schemas/common.ts";
import {
  AnswerParams,
  Experiment,
  ExperimentCreate,
  ExperimentList,
  ExperimentResults,
  ExportQuery,
  Feedback,
  FeedbackBody,
  TutorModelSettings,
  TutorModelUpdate,
} from "../../../shared/schemas/tutor.ts";
import type { Deps } from "../../deps.ts";
import { fineTuningJsonl } from "../../tutor/export.ts";
import { type AppEnv, auditContext, requireAuth } from "../context.ts";
import { access, json, jsonBody, problems } from "../openapi.ts";

/**
 * The tutor over HTTP: learners rate answers; admins choose the model (its API key stored encrypted, never
 * returned), run A/B experiments and export well-rated answers for fine-tuning. Every admin action is audited.
 */
export function tutorRoutes(app: OpenAPIHono<AppEnv>, deps: Deps): void {
  const { tutor, tutorModels, experiments, audit } = deps;

  const rate = createRoute({
    method: "put",
    path: "/api/v1/rooms/{id}/answers/{answerId}/feedback",
    tags: ["rooms"],
    summary: "Rate a finished answer (thumbs up or down, optional comment); a new rating replaces mine",
    ...access("rooms:use", audit),
    request: { params: AnswerParams, body: jsonBody(FeedbackBody) },
    responses: {
      200: json(Feedback, "My rating"),
      ...problems("unauthenticated", "forbidden", "not_found", "conflict"),
    },
  });
  app.openapi(rate, async (c) => {
    const auth = requireAuth(c);
    const { id, answerId } = c.req.valid("param");
    return c.json(await tutor.rate(id, auth.user.id, answerId, c.req.valid("json")), 200);
  });

  const tags = ["admin"];
  const readModel = createRoute({
    method: "get",
    path: "/api/v1/admin/tutor/model",
    tags,
    summary: "The tutor's model: where its settings come from, endpoint, model, models per kind (never the key)",
    ...access("tutor:manage", audit),
    responses: { 200: json(TutorModelSettings, "The settings in force"), ...problems("unauthenticated", "forbidden") },
  });
  app.openapi(readModel, async (c) => c.json(await tutorModels.settings(), 200));

  const setModel = createRoute({
    method: "put",
    path: "/api/v1/admin/tutor/model",
    tags,
    summary: "Choose the tutor's model at runtime (overrides LLM_* until reset); the API key is write-only",
    ...access("tutor:manage", audit),
    request: { body: jsonBody(TutorModelUpdate) },
    responses: { 200: json(TutorModelSettings, "The settings in force"), ...problems("unauthenticated", "forbidden") },
  });
  app.openapi(setModel, async (c) => {
    const change = c.req.valid("json");
    const after = await tutorModels.update(change);
    await audit.append(auditContext(c), {
      action: "admin.tutor_model_update",
      outcome: "success",
      details: {
        provider: after.provider,
        baseUrl: after.baseUrl,
        model: after.model,
        modelsByKind: after.modelsByKind,
        apiKeyChanged: change.provider === "openai" && change.apiKey !== undefined,
      },
    });
    return c.json(after, 200);
  });

  const resetModel = createRoute({
    method: "delete",
    path: "/api/v1/admin/tutor/model",
    tags,
    summary: "Forget the runtime choice: back to the LLM_* environment (or the offline tutor)",
    ...access("tutor:manage", audit),
    responses: { 200: json(TutorModelSettings, "The settings in force"), ...problems("unauthenticated", "forbidden") },
  });
  app.openapi(resetModel, async (c) => {
    const after = await tutorModels.reset();
    await audit.append(auditContext(c), { action: "admin.tutor_model_reset", outcome: "success", details: {} });
    return c.json(after, 200);
  });

  const listExperiments = createRoute({
    method: "get",
    path: "/api/v1/admin/experiments",
    tags,
    summary: "The tutor's A/B experiments, newest first",
    ...access("tutor:manage", audit),
    responses: { 200: json(ExperimentList, "The experiments"), ...problems("unauthenticated", "forbidden") },
  });
  app.openapi(listExperiments, async (c) => c.json({ items: await experiments.list() }, 200));

  const createExperiment = createRoute({
    method: "post",
    path: "/api/v1/admin/experiments",
    tags,
    summary: "Start an experiment: variants (instructions, model, temperature) with weights; one runs at a time",
    ...access("tutor:manage", audit),
    request: { body: jsonBody(ExperimentCreate) },
    responses: {
      201: json(Experiment, "The running experiment"),
      ...problems("unauthenticated", "forbidden", "conflict"),
    },
  });
  app.openapi(createExperiment, async (c) => {
    const auth = requireAuth(c);
    const created = await experiments.create(c.req.valid("json"), auth.user.id);
    await audit.append(auditContext(c), {
      action: "admin.experiment_start",
      outcome: "success",
      targetType: "experiment",
      targetId: created.id,
      details: { name: created.name, variants: created.variants.map((v) => ({ id: v.id, weight: v.weight })) },
    });
    return c.json(created, 201);
  });

  const stopExperiment = createRoute({
    method: "post",
    path: "/api/v1/admin/experiments/{id}/stop",
    tags,
    summary: "Stop an experiment (its results stay readable)",
    ...access("tutor:manage", audit),
    request: { params: IdParam },
    responses: {
      200: json(Experiment, "The stopped experiment"),
      ...problems("unauthenticated", "forbidden", "not_found", "conflict"),
    },
  });
  app.openapi(stopExperiment, async (c) => {
    const stopped = await experiments.stop(c.req.valid("param").id);
    await audit.append(auditContext(c), {
      action: "admin.experiment_stop",
      outcome: "success",
      targetType: "experiment",
      targetId: stopped.id,
      details: {},
    });
    return c.json(stopped, 200);
  });

  const results = createRoute({
    method: "get",
    path: "/api/v1/admin/experiments/{id}/results",
    tags,
    summary:
      "Per variant: finished answers, ratings, positive-feedback rate with its 95% Wilson interval, latency, tokens",
    ...access("tutor:manage", audit),
    request: { params: IdParam },
    responses: {
      200: json(ExperimentResults, "The results"),
      ...problems("unauthenticated", "forbidden", "not_found"),
    },
  });
  app.openapi(results, async (c) => c.json(await experiments.results(c.req.valid("param").id), 200));

  const exportRoute = createRoute({
    method: "get",
    path: "/api/v1/admin/tutor/export",
    tags,
    summary: "Well-rated answers as chat-format JSONL for fine-tuning, personal data removed",
    ...access("tutor:manage", audit),
    request: { query: ExportQuery },
    responses: {
      200: {
        description: 'One `{"messages":[system, user, assistant]}` object per line',
        content: { "application/x-ndjson": { schema: z.string() } },
      },
      ...problems("unauthenticated", "forbidden"),
    },
  });
  app.openapi(exportRoute, async (c) => {
    const { minScore, includeOffline } = c.req.valid("query");
    const { jsonl, count } = await fineTuningJsonl(deps.dbh.db, { minScore, includeOffline });
    await audit.append(auditContext(c), {
      action: "admin.tutor_export",
      outcome: "success",
      details: { minScore, includeOffline, count },
    });
    // (the typed responses know JSON and text only)
    return c.body(jsonl, 200, {
      "content-type": "application/x-ndjson; charset=utf-8",
      "content-disposition": 'attachment; filename="doctorpy-fine-tuning.jsonl"',
    }) as never;
  });
}
