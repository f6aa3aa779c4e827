import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadCourse } from "../../server/tutor/course.ts";
import type { Problem } from "../../shared/schemas/common.ts";
import type { LessonSearchResults, LessonSummary, LessonView } from "../../shared/schemas/course.ts";
import { registerUser, type TestUser } from "../helpers/factories.ts";
import { Client } from "../helpers/http.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
let learner: TestUser;
beforeAll(async () => {
  server = await startServer();
  learner = await registerUser(server.url, "Reader");
});
afterAll(() => server.close());

describe("the course over HTTP", () => {
  it("lists the lessons in order, in the language asked for", async () => {
    const en = await learner.client.get<{ items: LessonSummary[] }>("/api/v1/lessons");
    expect(en.status).toBe(200);
    expect(en.body.items.length).toBeGreaterThanOrEqual(24);
    expect(en.body.items.map((l) => l.order)).toEqual(en.body.items.map((_, i) => i + 1));
    const fr = await learner.client.get<{ items: LessonSummary[] }>("/api/v1/lessons?lang=fr");
    expect(fr.body.items.map((l) => l.id)).toEqual(en.body.items.map((l) => l.id));
    expect(fr.body.items.find((l) => l.id === "dictionaries")?.title).toBe("Les dictionnaires");
  });

  it("serves a lesson with its exercises' starters, tests and hints, and never their solutions", async () => {
    const course = await loadCourse(resolve(import.meta.dirname, "../../content"));
    for (const lang of ["en", "fr"] as const) {
      const res = await learner.client.get<LessonView>(`/api/v1/lessons/decorators?lang=${lang}`);
      expect(res.status).toBe(200);
      const source = course.byId.get("decorators")?.[lang];
      expect(res.body.exercises.map((e) => e.id)).toEqual(source?.exercises.map((e) => e.id));
      expect(res.body.exercises[0]?.hints).toEqual(source?.exercises[0]?.hints);
      expect(res.body.related.every((r) => typeof r.title === "string")).toBe(true);
      const raw = JSON.stringify(res.body);
      expect(raw).not.toContain('"solution"');
      // Lines of a solution that nothing else in the lesson shows must not reach the learner.
      const shown = JSON.stringify(source, (k, v) => (k === "solution" ? undefined : v));
      for (const ex of source?.exercises ?? []) {
        const own = ex.solution
          .split("\n")
          .map((l) => l.trim())
          .filter((l) => l.length > 12 && !l.startsWith("#") && !shown.includes(JSON.stringify(l).slice(1, -1)));
        expect(own.length).toBeGreaterThan(0);
        for (const line of own) expect(raw).not.toContain(JSON.stringify(line).slice(1, -1));
      }
    }
  });

  it("answers 404 for an unknown lesson and 400 for a bad id or language", async () => {
    const missing = await learner.client.get<Problem>("/api/v1/lessons/no-such-lesson");
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe("not_found");
    expect((await learner.client.get<Problem>("/api/v1/lessons/..%2Fsecrets")).status).toBe(400);
    const lang = await learner.client.get<Problem>("/api/v1/lessons?lang=de");
    expect(lang.status).toBe(400);
    expect(lang.body.errors?.[0]?.path).toBe("query.lang");
  });

  it("finds the lessons that answer a question, guessing its language", async () => {
    const en = await learner.client.get<LessonSearchResults>(
      `/api/v1/lessons/search?q=${encodeURIComponent("KeyError when reading a dict")}`,
    );
    expect(en.status).toBe(200);
    expect(en.body.language).toBe("en");
    expect(en.body.items.map((i) => i.lesson.id)).toContain("dictionaries");
    const fr = await learner.client.get<LessonSearchResults>(
      `/api/v1/lessons/search?q=${encodeURIComponent("comment écrire une boucle qui s'arrête ?")}&limit=5`,
    );
    expect(fr.body.language).toBe("fr");
    expect(fr.body.items.length).toBeLessThanOrEqual(5);
    expect(fr.body.items.map((i) => i.lesson.id)).toContain("loops");
    expect((await learner.client.get<Problem>("/api/v1/lessons/search?q=")).status).toBe(400);
    expect((await learner.client.get<Problem>(`/api/v1/lessons/search?q=${"x".repeat(501)}`)).status).toBe(400);
  });

  it("is for signed-in users only", async () => {
    expect((await new Client(server.url).get("/api/v1/lessons")).status).toBe(401);
    expect((await new Client(server.url).get("/api/v1/lessons/search?q=list")).status).toBe(401);
  });
});
