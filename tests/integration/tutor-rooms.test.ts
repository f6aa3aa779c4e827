import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { RoomJoinResult } from "../../shared/realtime.ts";
import type { AccessToken } from "../../shared/schemas/auth.ts";
import type { Room } from "../../shared/schemas/rooms.ts";
import type { Answer, AnswerPage } from "../../shared/schemas/tutor.ts";
import { testConfig } from "../helpers/config.ts";
import { registerUser, type TestUser, waitFor } from "../helpers/factories.ts";
import { type FakeLlm, type Script, startFakeLlm } from "../helpers/fake-llm.ts";
import { startServer, type TestServer } from "../helpers/server.ts";
import {
  AnswerView,
  type ClientSocket,
  connect,
  ackData as data,
  finishedAnswer as finished,
  request,
} from "../helpers/sockets.ts";

/** A room with an owner, a moderator and two members, each with a socket in the room and an AnswerView. */
interface World {
  s: TestServer;
  room: Room;
  users: Record<"owner" | "moderator" | "alice" | "bob", TestUser>;
}

const open: ClientSocket[] = [];
afterEach(() => {
  for (const socket of open.splice(0)) socket.close();
});

async function world(s: TestServer): Promise<World> {
  const owner = await registerUser(s.url, "Owner");
  const room = (await owner.client.post<Room>("/api/v1/rooms", { name: "Tutor room", language: "en" })).body;
  const users = { owner } as World["users"];
  for (const name of ["moderator", "alice", "bob"] as const) {
    users[name] = await registerUser(s.url, name);
    await users[name].client.post("/api/v1/rooms/join", { code: room.inviteCode });
  }
  await owner.client.patch(`/api/v1/rooms/${room.id}/members/${users.moderator.me.user.id}`, { role: "moderator" });
  return { s, room, users };
}

async function inRoom(
  w: World,
  u: TestUser,
): Promise<{ socket: ClientSocket; view: AnswerView; join: RoomJoinResult }> {
  const token = (await u.client.post<AccessToken>("/api/v1/auth/token")).body.token;
  const socket = await connect(w.s.url, { token });
  open.push(socket);
  const view = new AnswerView(socket);
  const reply = await request<RoomJoinResult>(socket, "room:join", { roomId: w.room.id });
  if (!reply.ok) throw new Error(`join failed: ${reply.error.code}`);
  view.joined(reply.data.answers);
  return { socket, view, join: reply.data };
}

const ask = (socket: ClientSocket, roomId: string, question: string, extra: object = {}) =>
  request<Answer>(socket, "tutor:ask", { roomId, question, ...extra });

describe("the offline tutor in a room", () => {
  let s: TestServer;
  let w: World;
  beforeAll(async () => {
    s = await startServer();
    // the defaults, before this suite raises the per-minute limit
    expect(await s.deps.settings.get()).toMatchObject({ tutorQuestionsPerMinute: 6, tutorTokensPerDay: 50_000 });
    await s.deps.settings.update({ tutorQuestionsPerMinute: 600 });
    w = await world(s);
  });
  afterAll(() => s.close());

  it("streams one answer to everyone in the room, stores it, and cites the lessons it used", async () => {
    const alice = await inRoom(w, w.users.alice);
    const bob = await inRoom(w, w.users.bob);
    const asked = data(await ask(alice.socket, w.room.id, "How do I write a for loop over a list?"));
    expect(asked).toMatchObject({ status: "queued", askerId: w.users.alice.me.user.id, text: "", deltas: 0 });

    const done = await waitFor(() => finished(bob.view, asked.id));
    expect(done.status).toBe("done");
    expect(done.model).toBe("doctorpy-offline");
    expect(done.text).toContain("Offline tutor");
    expect(done.sources.map((x) => x.lessonId)).toContain("loops");
    expect(done.usage?.completionTokens).toBeGreaterThan(0);
    expect(done.latencyMs).toBeGreaterThanOrEqual(0);
    // Both watchers rebuilt the same text from the pieces, in order, each piece once.
    await waitFor(() => finished(alice.view, asked.id));
    for (const view of [alice.view, bob.view]) {
      expect(view.streamed(asked.id)).toEqual({ text: done.text, deltas: done.deltas });
      expect(view.duplicates).toBe(0);
      const seqs = view.trace
        .filter((t) => t.startsWith(`tutor:delta:${asked.id}`))
        .map((t) => Number(t.split(":").at(-1)));
      expect(seqs).toEqual(Array.from({ length: done.deltas }, (_, i) => i + 1));
      expect(view.trace.at(0)).toBe(`tutor:queued:${asked.id}`);
      expect(view.trace.at(1)).toBe(`tutor:started:${asked.id}`);
      expect(view.trace.at(-1)).toBe(`tutor:done:${asked.id}`);
    }
    const page = await w.users.bob.client.get<AnswerPage>(`/api/v1/rooms/${w.room.id}/answers`);
    expect(page.status).toBe(200);
    expect(page.body.items[0]).toMatchObject({ id: asked.id, status: "done", text: done.text, deltas: done.deltas });
  });

  it("answers in French when asked in French, and never gives an exercise's solution before an attempt", async () => {
    const alice = await inRoom(w, w.users.alice);
    const fr = data(await ask(alice.socket, w.room.id, "Comment écrire une boucle while qui s'arrête ?"));
    const exercise = data(
      await ask(alice.socket, w.room.id, "Help with this exercise", {
        exercise: { lessonId: "loops", exerciseId: "count-vowels", attempts: [], hintsSeen: 0 },
      }),
    );
    const a = await waitFor(() => finished(alice.view, fr.id));
    expect(alice.view.streamed(fr.id).text).toBe(a.text);
    expect(a.language).toBe("fr");
    expect(a.text).toContain("Tuteur hors ligne");
    const e = await waitFor(() => finished(alice.view, exercise.id));
    expect(e.kind).toBe("exercise_help");
    expect(e.text).toMatch(/try|essay/i);
    const bad = await ask(alice.socket, w.room.id, "?", { exercise: { lessonId: "loops", exerciseId: "nope" } });
    expect(bad).toMatchObject({ ok: false, error: { code: "invalid_input" } });
  });

  it("refuses questions that are too long, from observers, and while the tutor is off", async () => {
    const alice = await inRoom(w, w.users.alice);
    expect(await ask(alice.socket, w.room.id, "x".repeat(2001))).toMatchObject({
      ok: false,
      error: { code: "invalid_input" },
    });
    const off = await w.users.owner.client.patch<Room>(`/api/v1/rooms/${w.room.id}`, { tutorEnabled: false });
    expect(off.body.tutorEnabled).toBe(false);
    try {
      expect(await ask(alice.socket, w.room.id, "Anyone there?")).toMatchObject({
        ok: false,
        error: { code: "tutor_off" },
      });
    } finally {
      await w.users.owner.client.patch(`/api/v1/rooms/${w.room.id}`, { tutorEnabled: true });
    }
  });

  it("limits questions per minute and tokens per day, naming when to retry", async () => {
    const carol = await registerUser(s.url, "Carol");
    await carol.client.post("/api/v1/rooms/join", { code: w.room.inviteCode });
    const c = await inRoom(w, carol);
    const admin = s.deps.settings;
    await admin.update({ tutorQuestionsPerMinute: 2 });
    try {
      data(await ask(c.socket, w.room.id, "What is a tuple?"));
      data(await ask(c.socket, w.room.id, "What is a set?"));
      const third = await ask(c.socket, w.room.id, "What is a dict?");
      expect(third).toMatchObject({ ok: false, error: { code: "rate_limited" } });
      if (!third.ok) expect(third.error.retryAfter).toBeGreaterThan(0);
    } finally {
      await admin.update({ tutorQuestionsPerMinute: 600 });
    }
    // The two answers used more than 100 tokens: the day's budget is spent.
    await waitFor(async () => {
      const page = (await carol.client.get<AnswerPage>(`/api/v1/rooms/${w.room.id}/answers`)).body;
      return page.items.filter((a) => a.askerId === carol.me.user.id && a.status === "done").length === 2;
    });
    await admin.update({ tutorTokensPerDay: 100 });
    try {
      const over = await ask(c.socket, w.room.id, "And a frozenset?");
      expect(over).toMatchObject({ ok: false, error: { code: "rate_limited" } });
      if (!over.ok) expect(over.error.retryAfter).toBeGreaterThan(3600);
    } finally {
      await admin.update({ tutorTokensPerDay: 50_000 });
    }
  });
});

describe("a personal room", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.close());

  it("is created once per learner, even where learners may not create rooms, and nobody else joins it", async () => {
    await registerUser(s.url, "First (admin)");
    await s.deps.settings.update({ learnersCreateRooms: false });
    const learner = await registerUser(s.url, "Solo");
    expect((await learner.client.post("/api/v1/rooms", { name: "Mine" })).status).toBe(403);
    const [a, b] = await Promise.all([
      learner.client.post<Room>("/api/v1/rooms/personal", { language: "fr" }),
      learner.client.post<Room>("/api/v1/rooms/personal", { language: "fr" }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 201]);
    expect(a.body.id).toBe(b.body.id);
    expect(a.body).toMatchObject({ personal: true, myRole: "owner", language: "fr", name: "Mon espace" });
    const again = await learner.client.post<Room>("/api/v1/rooms/personal", {});
    expect(again).toMatchObject({ status: 200, body: { id: a.body.id } });
    // The code of a personal room lets nobody in.
    const other = await registerUser(s.url, "Other");
    expect((await other.client.post("/api/v1/rooms/join", { code: a.body.inviteCode })).status).toBe(404);
    expect((await other.client.post<Room>("/api/v1/rooms/personal", {})).body.id).not.toBe(a.body.id);

    // Alone with the tutor.
    const w: World = { s, room: a.body, users: { owner: learner } as World["users"] };
    const me = await inRoom(w, learner);
    const asked = data(await ask(me.socket, a.body.id, "Qu'est-ce qu'une liste ?"));
    const done = await waitFor(() => finished(me.view, asked.id));
    expect(done.status).toBe("done");
    expect(done.text).toContain("Tuteur hors ligne");
  });
});

describe("queueing, cancelling and joining mid-answer", () => {
  let s: TestServer;
  let w: World;
  beforeAll(async () => {
    // 10 ms between words: an answer takes a few seconds, long enough to act on it while it streams.
    s = await startServer({ tutor: { ...testConfig().tutor, offlineDelayMs: 10 } });
    await s.deps.settings.update({ tutorQuestionsPerMinute: 600 });
    w = await world(s);
  });
  afterAll(() => s.close());

  it("runs one generation per room at a time, in the order asked", async () => {
    const alice = await inRoom(w, w.users.alice);
    const bob = await inRoom(w, w.users.bob);
    const first = data(await ask(alice.socket, w.room.id, "What is a variable?"));
    const second = data(await ask(bob.socket, w.room.id, "What is a string?"));
    const third = data(await ask(alice.socket, w.room.id, "What is a function?"));
    // While the first streams, the others are visible as queued.
    await waitFor(() => alice.view.get(first.id)?.status === "streaming");
    expect(alice.view.get(second.id)?.status).toBe("queued");
    expect(alice.view.get(third.id)?.status).toBe("queued");
    await waitFor(() => finished(alice.view, third.id), 30_000);
    const starts = alice.view.trace.filter((t) => t.startsWith("tutor:started") || t.startsWith("tutor:done"));
    expect(starts).toEqual(
      [first, first, second, second, third, third].map(
        (a, i) => `${i % 2 === 0 ? "tutor:started" : "tutor:done"}:${a.id}`,
      ),
    );
    for (const a of [first, second, third]) expect(alice.view.get(a.id)?.status).toBe("done");
  });

  it("lets the asker cancel: the text so far is kept and the queue goes on", async () => {
    const alice = await inRoom(w, w.users.alice);
    const bob = await inRoom(w, w.users.bob);
    const first = data(await ask(alice.socket, w.room.id, "Explain classes and objects"));
    const next = data(await ask(bob.socket, w.room.id, "Explain inheritance"));
    await waitFor(() => (alice.view.get(first.id)?.deltas ?? 0) >= 3);
    // Bob may not cancel Alice's question; she may.
    expect(await request(bob.socket, "tutor:cancel", { roomId: w.room.id, answerId: first.id })).toMatchObject({
      ok: false,
      error: { code: "forbidden" },
    });
    data(await request(alice.socket, "tutor:cancel", { roomId: w.room.id, answerId: first.id }));
    const cancelled = await waitFor(() => finished(bob.view, first.id));
    expect(cancelled.status).toBe("cancelled");
    expect(cancelled.text.length).toBeGreaterThan(0);
    expect(cancelled.deltas).toBeGreaterThanOrEqual(3);
    expect(bob.view.streamed(first.id).text).toBe(cancelled.text);
    const stored = (await w.users.alice.client.get<AnswerPage>(`/api/v1/rooms/${w.room.id}/answers`)).body.items;
    expect(stored.find((a) => a.id === first.id)).toMatchObject({ status: "cancelled", text: cancelled.text });
    // The next question starts; a moderator cancels it (audited), and a finished answer cannot be cancelled again.
    await waitFor(() => bob.view.get(next.id)?.status === "streaming");
    const mod = await inRoom(w, w.users.moderator);
    data(await request(mod.socket, "tutor:cancel", { roomId: w.room.id, answerId: next.id }));
    await waitFor(() => finished(bob.view, next.id));
    expect(await request(alice.socket, "tutor:cancel", { roomId: w.room.id, answerId: first.id })).toMatchObject({
      ok: false,
      error: { code: "conflict" },
    });
    const audit = await s.deps.audit.list({ action: "room.answer_cancel", limit: 10 });
    expect(audit.items.map((e) => e.targetId)).toContain(next.id);
    // Bob's refused attempt is on record too.
    expect(
      audit.items.some(
        (e) => e.outcome === "denied" && e.targetId === first.id && e.actorId === w.users.bob.me.user.id,
      ),
    ).toBe(true);
  });

  it("gives a client that joins mid-answer the text so far, then the rest: the exact text", async () => {
    const alice = await inRoom(w, w.users.alice);
    const asked = data(await ask(alice.socket, w.room.id, "How do list comprehensions work?"));
    await waitFor(() => (alice.view.get(asked.id)?.deltas ?? 0) >= 5);
    const late = await inRoom(w, w.users.bob);
    const seen = late.join.answers.find((a) => a.id === asked.id);
    expect(seen?.status).toBe("streaming");
    expect(seen?.deltas).toBeGreaterThanOrEqual(5);
    expect(seen?.text.length).toBeGreaterThan(0);
    const done = await waitFor(() => finished(late.view, asked.id), 20_000);
    expect(done.status).toBe("done");
    const final = await waitFor(() => finished(alice.view, asked.id));
    expect(late.view.streamed(asked.id)).toEqual({ text: final.text, deltas: final.deltas });
    expect(final.text.startsWith(seen?.text ?? "∅")).toBe(true);
  });
});

describe("teacher review", () => {
  let s: TestServer;
  let w: World;
  beforeAll(async () => {
    s = await startServer();
    await s.deps.settings.update({ tutorQuestionsPerMinute: 600 });
    w = await world(s);
    await w.users.owner.client.patch(`/api/v1/rooms/${w.room.id}`, { tutorReview: true });
  });
  afterAll(() => s.close());

  it("holds answers for moderators until one releases them; a rejected answer never reaches members", async () => {
    const alice = await inRoom(w, w.users.alice);
    const mod = await inRoom(w, w.users.moderator);
    const asked = data(await ask(alice.socket, w.room.id, "What does the return statement do?"));
    const held = await waitFor(() => finished(alice.view, asked.id));
    expect(held).toMatchObject({ status: "held", text: "", deltas: 0 });
    expect(alice.view.trace.some((t) => t.startsWith("tutor:delta"))).toBe(false);
    const modView = await waitFor(() => finished(mod.view, asked.id));
    expect(modView.status).toBe("held");
    expect(modView.text.length).toBeGreaterThan(0);
    expect(mod.view.streamed(asked.id).text).toBe(modView.text);
    expect(alice.view.streamed(asked.id)).toEqual({ text: "", deltas: 0 });
    // Members cannot read it over HTTP either, nor review it.
    const page = (await w.users.alice.client.get<AnswerPage>(`/api/v1/rooms/${w.room.id}/answers`)).body;
    expect(page.items.find((a) => a.id === asked.id)?.text).toBe("");
    expect(
      await request(alice.socket, "tutor:review", { roomId: w.room.id, answerId: asked.id, approve: true }),
    ).toMatchObject({ ok: false, error: { code: "forbidden" } });

    data(await request(mod.socket, "tutor:review", { roomId: w.room.id, answerId: asked.id, approve: true }));
    const released = await waitFor(() =>
      alice.view.get(asked.id)?.status === "done" ? alice.view.get(asked.id) : undefined,
    );
    expect(released?.text).toBe(modView.text);

    const second = data(await ask(alice.socket, w.room.id, "What is a generator?"));
    await waitFor(() => finished(mod.view, second.id));
    data(await request(mod.socket, "tutor:review", { roomId: w.room.id, answerId: second.id, approve: false }));
    const rejected = await waitFor(() =>
      alice.view.get(second.id)?.status === "rejected" ? alice.view.get(second.id) : undefined,
    );
    expect(rejected?.text).toBe("");
    expect(
      await request(mod.socket, "tutor:review", { roomId: w.room.id, answerId: second.id, approve: true }),
    ).toMatchObject({
      ok: false,
      error: { code: "conflict" },
    });
    const audit = await s.deps.audit.list({ action: "room.answer_approve", limit: 10 });
    expect(audit.items.map((e) => e.targetId)).toContain(asked.id);
  });
});

describe("a model behind an OpenAI-compatible endpoint", () => {
  let s: TestServer;
  let llm: FakeLlm;
  let w: World;
  beforeAll(async () => {
    llm = await startFakeLlm();
    s = await startServer({
      tutor: {
        ...testConfig().tutor,
        llm: { baseUrl: llm.url, apiKey: "sk-test", model: "tutor-model" },
        idleTimeoutMs: 500,
        totalTimeoutMs: 5000,
      },
    });
    await s.deps.settings.update({ tutorQuestionsPerMinute: 600 });
    w = await world(s);
  });
  afterAll(async () => {
    await s.close();
    await llm.close();
  });

  it("streams the model's tokens and stores its usage, with the course passages in the prompt", async () => {
    const alice = await inRoom(w, w.users.alice);
    llm.queue({ kind: "stream", tokens: ["A list ", "is ", "ordered."], delayMs: 5 });
    const asked = data(await ask(alice.socket, w.room.id, "What is a list in Python?"));
    const done = await waitFor(() => finished(alice.view, asked.id));
    expect(done).toMatchObject({ status: "done", text: "A list is ordered.", deltas: 3, model: "tutor-model" });
    expect(done.usage?.estimated).toBe(false);
    const sent = llm.requests.at(-1);
    expect(sent?.authorization).toBe("Bearer sk-test");
    expect(sent?.body.messages[0]?.content).toContain("[lists]");
    expect(sent?.body.messages.at(-1)?.content).toBe("What is a list in Python?");
  });

  it("ends each kind of failure cleanly: the room sees the error, the text so far is kept, the next answer works", async () => {
    const alice = await inRoom(w, w.users.alice);
    const cases: { script: Script; error: string; text: string }[] = [
      {
        script: { kind: "break", tokens: ["Half ", "an ", "answer"], after: 2, delayMs: 10 },
        error: "broken_stream",
        text: "Half an ",
      },
      { script: { kind: "stall", tokens: ["Slow ", "start"], after: 1 }, error: "timeout", text: "Slow " },
      { script: { kind: "status", status: 429, retryAfter: 30 }, error: "rate_limited", text: "" },
      { script: { kind: "status", status: 400 }, error: "refused", text: "" },
    ];
    for (const c of cases) {
      llm.queue(c.script);
      const asked = data(await ask(alice.socket, w.room.id, `Question for ${c.error}`));
      const end = await waitFor(() => finished(alice.view, asked.id), 10_000);
      expect(end, c.error).toMatchObject({ status: "failed", error: c.error, text: c.text });
    }
    llm.queue({ kind: "stream", tokens: ["Still ", "here."] });
    const ok = data(await ask(alice.socket, w.room.id, "Are you still there?"));
    expect(await waitFor(() => finished(alice.view, ok.id))).toMatchObject({ status: "done", text: "Still here." });
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
  });

  it("cancels a slow stream and closes the request to the model", async () => {
    const alice = await inRoom(w, w.users.alice);
    llm.queue({ kind: "stream", tokens: Array.from({ length: 200 }, (_, i) => `t${i} `), delayMs: 20 });
    const asked = data(await ask(alice.socket, w.room.id, "Tell me everything"));
    await waitFor(() => (alice.view.get(asked.id)?.deltas ?? 0) >= 3);
    data(await request(alice.socket, "tutor:cancel", { roomId: w.room.id, answerId: asked.id }));
    const end = await waitFor(() => finished(alice.view, asked.id));
    expect(end.status).toBe("cancelled");
    expect(end.text.startsWith("t0 t1 t2 ")).toBe(true);
    await waitFor(() => llm.requests.at(-1)?.closedEarly);
  });
});
