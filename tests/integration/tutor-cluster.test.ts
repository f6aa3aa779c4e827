import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { RoomJoinResult } from "../../shared/realtime.ts";
import type { AccessToken } from "../../shared/schemas/auth.ts";
import type { Room } from "../../shared/schemas/rooms.ts";
import type { Answer, AnswerPage } from "../../shared/schemas/tutor.ts";
import { startCluster, type TestCluster } from "../helpers/cluster.ts";
import { testConfig } from "../helpers/config.ts";
import { registerUser, type TestUser, waitFor } from "../helpers/factories.ts";
import type { TestServer } from "../helpers/server.ts";
import {
  AnswerView,
  type ClientSocket,
  connect,
  ackData as data,
  finishedAnswer as finished,
  request,
} from "../helpers/sockets.ts";

let cluster: TestCluster;
let room: Room;
let users: TestUser[];
const open: ClientSocket[] = [];
const node = (i: number) => cluster.nodes[i] as TestServer;

async function socketOf(server: TestServer, u: TestUser): Promise<ClientSocket> {
  const token = (await u.client.post<AccessToken>("/api/v1/auth/token")).body.token;
  const socket = await connect(server.url, { token });
  open.push(socket);
  return socket;
}
/** Joins the room on `socket`, feeding `view` from the ack (a rejoin reuses the client's view). */
async function join(socket: ClientSocket, view: AnswerView): Promise<RoomJoinResult> {
  view.rejoining();
  view.follow(socket);
  const result = data(await request<RoomJoinResult>(socket, "room:join", { roomId: room.id }));
  view.joined(result.answers);
  return result;
}
/** A socket of `u` on `server`, in the room, with its AnswerView. */
async function member(server: TestServer, u: TestUser) {
  const socket = await socketOf(server, u);
  const view = new AnswerView();
  await join(socket, view);
  return { socket, view };
}
const ask = (socket: ClientSocket, question: string) =>
  request<Answer>(socket, "tutor:ask", { roomId: room.id, question });

beforeAll(async () => {
  // The offline tutor pauses 10 ms between words: an answer streams for a couple of seconds.
  cluster = await startCluster(3, { tutor: { ...testConfig().tutor, offlineDelayMs: 10 } });
  users = [];
  for (let i = 0; i < 3; i++) users.push(await registerUser(node(i).url, `User ${i}`));
  const owner = users[0] as TestUser;
  room = await node(0).deps.rooms.create(
    { id: owner.me.user.id, role: owner.me.user.role },
    { name: "Tutor cluster", topic: "", language: "en" },
  );
  for (const u of users.slice(1)) await node(1).deps.rooms.joinByCode(u.me.user.id, room.inviteCode as string);
  await node(0).deps.settings.update({ tutorQuestionsPerMinute: 600 });
});
afterEach(async () => {
  for (const socket of open.splice(0)) socket.close();
  // Each test starts with the room's tutor idle.
  await waitFor(async () => {
    const live = await node(0).deps.tutor.live(room.id, true);
    return live.every((a) => a.status !== "queued" && a.status !== "streaming");
  }, 30_000);
});
afterAll(() => cluster?.close());

describe("the tutor across three nodes", () => {
  it("streams an answer asked on A to members on B and C, in order, and stores the same text", async () => {
    const members = [];
    for (let i = 0; i < 3; i++) members.push(await member(node(i), users[i] as TestUser));
    const asked = data(await ask(members[0]?.socket as ClientSocket, "How do while loops work?"));
    const ends = await Promise.all(members.map((m) => waitFor(() => finished(m.view, asked.id), 20_000)));
    const stored = (await (users[2] as TestUser).client.get<AnswerPage>(`/api/v1/rooms/${room.id}/answers`)).body;
    const final = stored.items.find((a) => a.id === asked.id) as Answer;
    expect(final.status).toBe("done");
    expect(final.deltas).toBeGreaterThan(20);
    for (const [i, m] of members.entries()) {
      expect(ends[i]?.text).toBe(final.text);
      expect(m.view.streamed(asked.id)).toEqual({ text: final.text, deltas: final.deltas });
      // every piece arrived once and in order, through whichever node
      const seqs = m.view.trace
        .filter((t) => t.startsWith(`tutor:delta:${asked.id}`))
        .map((t) => Number(t.split(":").at(-1)));
      expect(seqs).toEqual(Array.from({ length: final.deltas }, (_, k) => k + 1));
    }
  });

  it("gives a client that drops mid-answer and reconnects to another node the exact full text", async () => {
    const asker = await member(node(0), users[0] as TestUser);
    const asked = data(await ask(asker.socket, "Explain dictionaries and their methods"));
    const away = await member(node(1), users[1] as TestUser);
    const { view } = away;
    await waitFor(() => (view.get(asked.id)?.deltas ?? 0) >= 5);
    away.socket.close();
    const seenBefore = view.get(asked.id)?.deltas ?? 0;
    const textBefore = view.get(asked.id)?.text ?? "";
    // Pieces go by while it is away; it comes back through node C with the view it kept.
    await waitFor(() => (asker.view.get(asked.id)?.deltas ?? 0) >= seenBefore + 10);
    const rejoined = await join(await socketOf(node(2), users[1] as TestUser), view);
    const mid = rejoined.answers.find((a) => a.id === asked.id);
    expect(mid?.status).toBe("streaming");
    expect(mid?.deltas).toBeGreaterThan(seenBefore);
    // What it had is a prefix of what the server holds: nothing was rewritten.
    expect(mid?.text.startsWith(textBefore)).toBe(true);
    const reference = await waitFor(() => finished(asker.view, asked.id), 20_000);
    const end = await waitFor(() => finished(view, asked.id), 20_000);
    expect(end.text).toBe(reference.text);
    // rebuilt from what it had, the join ack and the pieces after it: the exact text, no piece twice in it
    expect(view.streamed(asked.id)).toEqual({ text: reference.text, deltas: reference.deltas });
  });

  it("runs one generation per room at a time, whichever node is asked", async () => {
    const members = [];
    for (let i = 0; i < 3; i++) members.push(await member(node(i), users[i] as TestUser));
    const asked = await Promise.all(
      members.map((m, i) => ask(m.socket, `Question ${i}: what is a module?`).then(data)),
    );
    const watcher = members[2]?.view as AnswerView;
    for (const a of asked) await waitFor(() => finished(watcher, a.id), 30_000);
    for (const a of asked) expect(watcher.get(a.id)?.status).toBe("done");
    // Never two at once: each start is followed by its own end.
    const lifecycle = watcher.trace.filter((t) => t.startsWith("tutor:started") || t.startsWith("tutor:done"));
    expect(lifecycle).toHaveLength(6);
    for (let k = 0; k < lifecycle.length; k += 2) {
      const id = (lifecycle[k] as string).split(":").at(-1);
      expect([lifecycle[k], lifecycle[k + 1]]).toEqual([`tutor:started:${id}`, `tutor:done:${id}`]);
    }
  });

  it("counts a user's questions once for the whole cluster (Redis), whichever node they ask through", async () => {
    const limited = await registerUser(node(0).url, "Limited");
    await node(0).deps.rooms.joinByCode(limited.me.user.id, room.inviteCode as string);
    const onEach = [];
    for (let i = 0; i < 3; i++) onEach.push(await member(node(i), limited));
    await node(0).deps.settings.update({ tutorQuestionsPerMinute: 2 });
    try {
      data(await ask(onEach[0]?.socket as ClientSocket, "First: what is a list?"));
      data(await ask(onEach[1]?.socket as ClientSocket, "Second: what is a tuple?"));
      const third = await ask(onEach[2]?.socket as ClientSocket, "Third: what is a set?");
      expect(third).toMatchObject({ ok: false, error: { code: "rate_limited" } });
      if (!third.ok) expect(third.error.retryAfter).toBeGreaterThan(0);
    } finally {
      await node(0).deps.settings.update({ tutorQuestionsPerMinute: 600 });
    }
  });

  it("cancels, from node A, an answer that node C generates", async () => {
    const onC = await member(node(2), users[2] as TestUser);
    const asked = data(await ask(onC.socket, "Explain exceptions and try/except"));
    await waitFor(() => (onC.view.get(asked.id)?.deltas ?? 0) >= 3, 10_000);
    expect(node(2).deps.tutor.generating(asked.id)).toBe(true);
    const sameUserOnA = await socketOf(node(0), users[2] as TestUser);
    data(await request(sameUserOnA, "tutor:cancel", { roomId: room.id, answerId: asked.id }));
    const end = await waitFor(() => finished(onC.view, asked.id), 10_000);
    expect(end.status).toBe("cancelled");
    expect(end.text.length).toBeGreaterThan(0);
    expect(onC.view.streamed(asked.id).text).toBe(end.text);
  });

  it("ends the answer of a node that stops mid-answer as interrupted, keeps its text, and goes on with the queue", async () => {
    const extra = await cluster.addNode();
    const onExtra = await member(extra, users[0] as TestUser);
    const watcher = await member(node(1), users[1] as TestUser);
    const doomed = data(await ask(onExtra.socket, "Explain classes, objects and methods"));
    await waitFor(() => (watcher.view.get(doomed.id)?.deltas ?? 0) >= 5, 10_000);
    const next = data(await ask(watcher.socket, "What is a set?"));
    await extra.close(1000);
    cluster.nodes.splice(cluster.nodes.indexOf(extra), 1);
    const end = await waitFor(() => finished(watcher.view, doomed.id), 10_000);
    expect(end).toMatchObject({ status: "failed", error: "interrupted" });
    expect(end.text.length).toBeGreaterThan(0);
    expect(watcher.view.streamed(doomed.id).text).toBe(end.text);
    // The question queued behind it is answered by a node still running (within the sweep's interval).
    const answered = await waitFor(() => finished(watcher.view, next.id), 30_000);
    expect(answered.status).toBe("done");
  });
});
