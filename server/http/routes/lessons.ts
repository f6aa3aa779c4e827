import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import {
  LanguageQuery,
  LessonList,
  LessonParams,
  LessonSearchQuery,
  LessonSearchResults,
  LessonView,
} from "../../../shared/schemas/course.ts";
import type { Deps } from "../../deps.ts";
import type { AppEnv } from "../context.ts";
import { access, json, problems } from "../openapi.ts";

const tags = ["lessons"];

/** The course: table of contents, one lesson (without reference solutions), and search. */
export function lessonRoutes(app: OpenAPIHono<AppEnv>, { course, audit }: Deps): void {
  const list = createRoute({
    method: "get",
    path: "/api/v1/lessons",
    tags,
    summary: "The course's lessons, in order",
    ...access("lessons:read", audit),
    request: { query: LanguageQuery },
    responses: { 200: json(LessonList, "The lessons"), ...problems("unauthenticated", "forbidden") },
  });
  app.openapi(list, async (c) => c.json({ items: await course.list(c.req.valid("query").lang) }, 200));

  // Registered before /lessons/{id}: "search" is not a lesson id.
  const search = createRoute({
    method: "get",
    path: "/api/v1/lessons/search",
    tags,
    summary: "The lessons that best answer a question (the offline tutor's retrieval), best first",
    ...access("lessons:read", audit),
    request: { query: LessonSearchQuery },
    responses: { 200: json(LessonSearchResults, "The best lessons"), ...problems("unauthenticated", "forbidden") },
  });
  app.openapi(search, async (c) => {
    const { q, lang, limit } = c.req.valid("query");
    return c.json(await course.search(q, lang, limit), 200);
  });

  const get = createRoute({
    method: "get",
    path: "/api/v1/lessons/{id}",
    tags,
    summary: "One lesson: sections, examples, exercises (starter, tests, hints; never the solution) and quiz",
    ...access("lessons:read", audit),
    request: { params: LessonParams, query: LanguageQuery },
    responses: { 200: json(LessonView, "The lesson"), ...problems("unauthenticated", "forbidden", "not_found") },
  });
  app.openapi(get, async (c) => c.json(await course.get(c.req.valid("param").id, c.req.valid("query").lang), 200));
}
