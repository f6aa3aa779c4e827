import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appSettings } from "../../db/schema.ts";
import { wilson } from "../../server/tutor/experiments.ts";
import type { RoomJoinResult } from "../../shared/realtime.ts";
import type { AuditPage } from "../../shared/schemas/admin.ts";
import type { AccessToken } from "../../shared/schemas/auth.ts";
import type { Room } from "../../shared/schemas/rooms.ts";
import type {
  Answer,
  Experiment,
  ExperimentResults,
  Feedback,
  TutorModelSettings,
} from "../../shared/schemas/tutor.ts";
import { testConfig } from "../helpers/config.ts";
import { registerUser, type TestUser, waitFor } from "../helpers/factories.ts";
import { type FakeLlm, startFakeLlm } from "../helpers/fake-llm.ts";
import { startServer, type TestServer } from "../helpers/server.ts";
import {
  AnswerView,
  type ClientSocket,
  connect,
  ackData as data,
  finishedAnswer as finished,
  request,
} from "../helpers/sockets.ts";

/**
 * Learning from use, against a server whose tutor is a fake OpenAI-compatible model: ratings, A/B experiments,
 * the model chosen at runtime, the answer cache and the fine-tuning export.
 */
let s: TestServer;
let llm: FakeLlm;
let admin: TestUser;
let room: Room;
const members: { user: TestUser; socket: ClientSocket; view: AnswerView }[] = [];

async function member(name: string): Promise<{ user: TestUser; socket: ClientSocket; view: AnswerView }> {
  const user = await registerUser(s.url, name);
  await user.client.post("/api/v1/rooms/join", { code: room.inviteCode });
  const token = (await user.client.post<AccessToken>("/api/v1/auth/token")).body.token;
  const socket = await connect(s.url, { token });
  const view = new AnswerView(socket);
  view.joined(data(await request<RoomJoinResult>(socket, "room:join", { roomId: room.id })).answers);
  const m = { user, socket, view };
  members.push(m);
  return m;
}

/** Asks and waits for the end of the answer. */
async function answered(m: { socket: ClientSocket; view: AnswerView }, question: string): Promise<Answer> {
  const asked = data(await request<Answer>(m.socket, "tutor:ask", { roomId: room.id, question }));
  return waitFor(() => finished(m.view, asked.id), 10_000);
}

const rate = (u: TestUser, answerId: string, body: object) =>
  u.client.put<Feedback>(`/api/v1/rooms/${room.id}/answers/${answerId}/feedback`, body);

beforeAll(async () => {
  llm = await startFakeLlm();
  s = await startServer({
    tutor: {
      ...testConfig().tutor,
      llm: { baseUrl: llm.url, apiKey: "sk-env", model: "env-model" },
      embeddingsModel: "embed-model",
    },
  });
  admin = await registerUser(s.url, "Admin");
  await s.deps.settings.update({ tutorQuestionsPerMinute: 600 });
  room = (await admin.client.post<Room>("/api/v1/rooms", { name: "Learning", language: "en" })).body;
});
afterAll(async () => {
  for (const m of members) m.socket.close();
  await s.close();
  await llm.close();
});

describe("feedback on answers", () => {
  it("takes one rating per user and answer, which a new one replaces", async () => {
    const alice = await member("Alice");
    const bob = await member("Bob");
    const a = await answered(alice, "What is a dictionary?");
    expect(a.status).toBe("done");

    const first = await rate(alice.user, a.id, { rating: "up", comment: "clear" });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ answerId: a.id, rating: "up", comment: "clear" });
    const changed = await rate(alice.user, a.id, { rating: "down" });
    expect(changed.body).toMatchObject({ rating: "down", comment: null });
    expect((await rate(bob.user, a.id, { rating: "up" })).status).toBe(200);
    const stored = await s.deps.dbh.db.query.answerFeedback.findMany({
      where: (f, { eq }) => eq(f.answerId, a.id),
    });
    expect(stored.map((f) => f.rating).sort()).toEqual(["down", "up"]);

    // Strangers, bad input, unfinished answers.
    const stranger = await registerUser(s.url, "Stranger");
    expect((await rate(stranger, a.id, { rating: "up" })).status).toBe(404);
    expect((await rate(alice.user, a.id, { rating: "meh" })).status).toBe(400);
    expect((await rate(alice.user, a.id, { rating: "up", comment: "x".repeat(1001) })).status).toBe(400);
    llm.queue({ kind: "status", status: 500 });
    const failed = await answered(alice, "This one fails");
    expect(failed.status).toBe("failed");
    expect((await rate(alice.user, failed.id, { rating: "up" })).status).toBe(409);
  });
});

describe("the model chosen at runtime", () => {
  it("overrides the environment, keeps the key secret, routes kinds to their models, and resets", async () => {
    const alice = members[0] ?? (await member("Alice"));
    const learner = await registerUser(s.url, "Not admin");
    expect((await learner.client.get("/api/v1/admin/tutor/model")).status).toBe(403);
    expect((await admin.client.get<TutorModelSettings>("/api/v1/admin/tutor/model")).body).toMatchObject({
      source: "env",
      model: "env-model",
      apiKeySet: true,
    });

    const set = await admin.client.put<TutorModelSettings>("/api/v1/admin/tutor/model", {
      provider: "openai",
      baseUrl: llm.url,
      model: "admin-model",
      apiKey: "sk-admin-secret",
      modelsByKind: { debugging: "debug-model" },
    });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({ source: "admin", model: "admin-model", apiKeySet: true });
    expect(JSON.stringify(set.body)).not.toContain("sk-admin-secret");
    // Stored encrypted; never in the audit log.
    const [row] = await s.deps.dbh.db.select().from(appSettings);
    expect(JSON.stringify(row?.value)).not.toContain("sk-admin-secret");
    const audit = await admin.client.get<AuditPage>("/api/v1/admin/audit?action=admin.tutor_model_update");
    expect(audit.body.items[0]?.details).toMatchObject({ model: "admin-model", apiKeyChanged: true });
    expect(JSON.stringify(audit.body)).not.toContain("sk-admin-secret");

    await answered(alice, "What is a set?");
    expect(llm.requests.at(-1)?.body.model).toBe("admin-model");
    expect(llm.requests.at(-1)?.authorization).toBe("Bearer sk-admin-secret");
    await answered(alice, "I get TypeError: 'int' object is not iterable, why?");
    expect(llm.requests.at(-1)?.body.model).toBe("debug-model");

    // The offline tutor on demand, then back to the environment.
    await admin.client.put("/api/v1/admin/tutor/model", { provider: "offline" });
    const offline = await answered(alice, "What is a loop?");
    expect(offline.model).toBe("doctorpy-offline");
    const reset = await admin.client.delete<TutorModelSettings>("/api/v1/admin/tutor/model");
    expect(reset.body).toMatchObject({ source: "env", model: "env-model" });
    await answered(alice, "What is a tuple?");
    expect(llm.requests.at(-1)?.body.model).toBe("env-model");
    expect(llm.requests.at(-1)?.authorization).toBe("Bearer sk-env");
  });
});

describe("A/B experiments", () => {
  it("assigns each user one variant for good, applies it, and reports results with confidence intervals", async () => {
    const learner = await registerUser(s.url, "Not admin");
    const body = {
      name: "Socratic or direct",
      variants: [
        { id: "socratic", weight: 1, instructions: "VARIANT-SOCRATIC: ask two questions first.", model: "model-s" },
        { id: "direct", weight: 1, model: "model-d", temperature: 0.2 },
      ],
    };
    expect((await learner.client.post("/api/v1/admin/experiments", body)).status).toBe(403);
    expect(
      (await admin.client.post("/api/v1/admin/experiments", { ...body, variants: [body.variants[0]] })).status,
    ).toBe(400);
    const created = await admin.client.post<Experiment>("/api/v1/admin/experiments", body);
    expect(created.status).toBe(201);
    expect((await admin.client.post("/api/v1/admin/experiments", body)).status).toBe(409);
    const experiment = created.body;

    // Six users ask twice each: each keeps their variant, and the model and the prompt follow it.
    const askers = [];
    for (let i = 0; i < 6; i++) askers.push(await member(`Learner ${i}`));
    const byUser = new Map<string, Answer[]>();
    for (const round of [0, 1]) {
      for (const m of askers) {
        const a = await answered(m, `Round ${round}: how do I use a for loop?`);
        const sent = llm.requests.at(-1);
        if (a.variant === "socratic") {
          expect(sent?.body.model).toBe("model-s");
          expect(sent?.body.messages[0]?.content).toContain("VARIANT-SOCRATIC");
        } else {
          expect(a.variant).toBe("direct");
          expect(sent?.body.model).toBe("model-d");
          expect(sent?.body.temperature).toBe(0.2);
          expect(sent?.body.messages[0]?.content).not.toContain("VARIANT-SOCRATIC");
        }
        byUser.set(m.user.me.user.id, [...(byUser.get(m.user.me.user.id) ?? []), a]);
      }
    }
    for (const answers of byUser.values()) expect(new Set(answers.map((a) => a.variant)).size).toBe(1);

    // Everyone rates every answer: up for socratic, up for 1 in 4 of direct.
    let k = 0;
    for (const a of [...byUser.values()].flat()) {
      for (const m of askers) {
        const up = a.variant === "socratic" || k++ % 4 === 0;
        expect((await rate(m.user, a.id, { rating: up ? "up" : "down" })).status).toBe(200);
      }
    }
    const results = (await admin.client.get<ExperimentResults>(`/api/v1/admin/experiments/${experiment.id}/results`))
      .body;
    const all = [...byUser.values()].flat();
    for (const v of results.variants) {
      const mine = all.filter((a) => a.variant === v.variant);
      expect(v.answers).toBe(mine.length);
      expect(v.ratings).toBe(mine.length * askers.length);
      if (v.ratings > 0) {
        expect(v.positiveRate).toBeCloseTo(v.up / v.ratings, 10);
        const [lo, hi] = wilson(v.up, v.ratings);
        expect(v.positiveRateCi?.[0]).toBeCloseTo(lo, 10);
        expect(v.positiveRateCi?.[1]).toBeCloseTo(hi, 10);
        expect(v.latencyMsMean).not.toBeNull();
        expect(v.tokensMean).toBeGreaterThan(0);
      }
    }
    const socratic = results.variants.find((v) => v.variant === "socratic");
    if (socratic && socratic.ratings > 0) expect(socratic.positiveRate).toBe(1);

    const stopped = await admin.client.post<Experiment>(`/api/v1/admin/experiments/${experiment.id}/stop`);
    expect(stopped.body.status).toBe("stopped");
    expect((await admin.client.post(`/api/v1/admin/experiments/${experiment.id}/stop`)).status).toBe(409);
    // Stopped: no variant any more (the other nodes' 5 s cache aside, this node forgets at once).
    const after = await answered(askers[0] as (typeof askers)[number], "And now?");
    expect(after.variant).toBeNull();
  });
});

describe("the answer cache", () => {
  it("replays an identical question in a room that opted in, marked as cached, and asks the model otherwise", async () => {
    const alice = members[0] ?? (await member("Alice"));
    const before = llm.requests.length;
    const first = await answered(alice, "What does enumerate do?");
    const second = await answered(alice, "what does ENUMERATE do");
    expect(llm.requests.length - before).toBe(2);
    expect(second.cached).toBe(false);

    await admin.client.patch(`/api/v1/rooms/${room.id}`, { tutorCache: true });
    try {
      const third = await answered(alice, "What does enumerate do?");
      const fourth = await answered(alice, "  what does enumerate do !");
      expect(llm.requests.length - before).toBe(3);
      expect(third.cached).toBe(false);
      expect(fourth).toMatchObject({ status: "done", cached: true, text: third.text, deltas: third.deltas });
      expect(alice.view.streamed(fourth.id).text).toBe(third.text);
      expect(first.text).toBe(third.text);
    } finally {
      await admin.client.patch(`/api/v1/rooms/${room.id}`, { tutorCache: false });
    }
  });
});

describe("hybrid retrieval", () => {
  it("embeds the course once in the background, then embeds each question and still cites the right lessons", async () => {
    const alice = members[0] ?? (await member("Alice"));
    expect(await s.deps.tutor.warmUp()).toBe(true);
    const passagesEmbedded = llm.embedded.length;
    expect(passagesEmbedded).toBeGreaterThan(200);
    const before = llm.embeddingRequests;
    const a = await answered(alice, "How do I catch an exception with try and except?");
    expect(llm.embeddingRequests - before).toBe(1);
    expect(llm.embedded.at(-1)).toBe("How do I catch an exception with try and except?");
    expect(a.sources.map((x) => x.lessonId)).toContain("exceptions");
    // warming up again embeds nothing new: the vectors come from the cache
    expect(await s.deps.tutor.warmUp()).toBe(true);
    expect(llm.embedded.length).toBe(passagesEmbedded + 1);
  });
});

describe("the fine-tuning export", () => {
  it("exports well-rated answers as chat JSONL without personal data, for admins only", async () => {
    const carol = await member("Carol Dupont");
    const bob = members.find((m) => m.user.me.user.displayName === "Bob") ?? (await member("Bob"));
    llm.queue({ kind: "stream", tokens: ["Hello ", "Carol, ", "mail ", "me ", "at ", "carol@example.org."] });
    const good = await answered(
      carol,
      "I'm Carol Dupont, call me on +33 6 12 34 56 78 or carol@example.org: what is a generator?",
    );
    llm.queue({ kind: "stream", tokens: ["A ", "bad ", "answer."] });
    const bad = await answered(carol, "What is a closure?");
    await rate(carol.user, good.id, { rating: "up" });
    await rate(bob.user, good.id, { rating: "up" });
    await rate(carol.user, bad.id, { rating: "down" });

    expect((await carol.user.client.get("/api/v1/admin/tutor/export")).status).toBe(403);
    const res = await admin.client.get<string>("/api/v1/admin/tutor/export?minScore=2");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("application/x-ndjson");
    const lines = res.body
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { messages: { role: string; content: string }[] });
    // (the experiment's well-rated answers are in it too)
    const line = lines.find((l) => l.messages[1]?.content.includes("generator"));
    expect(lines.some((l) => l.messages[1]?.content.includes("closure"))).toBe(false);
    expect(line?.messages.map((m) => m.role)).toEqual(["system", "user", "assistant"]);
    expect(line?.messages[1]?.content).toContain("what is a generator?");
    expect(res.body).not.toMatch(/carol|dupont|example\.org|12 34 56/i);
    expect(line?.messages[2]?.content).toBe("Hello [name], mail me at [email].");

    const audit = await admin.client.get<AuditPage>("/api/v1/admin/audit?action=admin.tutor_export");
    expect(audit.body.items[0]?.details).toMatchObject({ minScore: 2, count: lines.length });
  });
});
