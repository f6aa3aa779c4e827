/**
 * One room of bench/tutor.ts: `members` light WebSocket clients (member i on node i mod nodes) in one room of a
 * server, each recording every `tutor:delta` (delta-recorder.ts), and answers asked into it one at a time. The
 * same code drives DoctorPy and the bare Socket.IO baseline: both speak `room:join`, `tutor:ask` (acked with the
 * answer's `id`), `tutor:delta` and `tutor:done`.
 */
import { randomUUID } from "node:crypto";
import type { ServerChild } from "./child.ts";
import { DeltaRecorder, samplesOf } from "./delta-recorder.ts";
import { LightSocket } from "./light-socket.ts";
import type { PacedModel, Streamed } from "./paced-model.ts";
import { closeAll, connectMany, joinAll, sleep } from "./realtime.ts";

export interface Asked {
  id: string;
  streamed: Streamed;
}

/** What the members saw of some answers. */
export interface Deliveries {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** p99 of each answer */
  answerP99: number[];
  /** p99 of the members on the node that generated, and of those on the other node (NaN on one node) */
  nearP99: number;
  farP99: number;
  /** tokens the model wrote × members, and distinct pieces received */
  expected: number;
  received: number;
  duplicates: number;
  /** pieces of answers not asked for, and malformed packets */
  stray: number;
  /** tokens a second the model achieved */
  tokensPerSec: number;
}

const withTimeout = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  new Promise<T>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${what}: nothing after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        ok(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        fail(err);
      },
    );
  });

async function waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
  const until = performance.now() + ms;
  while (!cond()) {
    if (performance.now() >= until) return false;
    await sleep(5);
  }
  return true;
}

export class TutorRoom {
  private readonly recorder: DeltaRecorder;
  private readonly done = new Map<string, { status: string; error?: unknown }>();

  private constructor(
    private readonly nodes: ServerChild[],
    private readonly sockets: LightSocket[],
    private readonly roomId: string,
    private readonly model: PacedModel,
    /** fixtures, handshakes and joins, ms */
    readonly setup: { fixturesMs: number; connectMs: number; joinMs: number },
  ) {
    this.recorder = new DeltaRecorder(sockets.length, (i) => this.nodeOf(i));
    sockets.forEach((s, i) => {
      s.onEvent("tutor:delta", (packet) => this.recorder.receive(i, packet));
    });
    // Every member receives `tutor:done`: the first one's copy tells that an answer ended.
    (sockets[0] as LightSocket).onEvent("tutor:done", (packet) => {
      const answer = (JSON.parse(packet.toString("utf8", 2)) as [string, { id: string; status: string }])[1];
      this.done.set(answer.id, answer);
    });
  }

  /**
   * Connects `members` sockets and joins them to one room. `fixtures`: the server has accounts (DoctorPy), so
   * users with access tokens and the room with its memberships are created first, through the first node.
   */
  static async open(nodes: ServerChild[], members: number, fixtures: boolean, model: PacedModel): Promise<TutorRoom> {
    let started = performance.now();
    let tokens: string[] | undefined;
    let roomId: string = randomUUID();
    if (fixtures) {
      const fx = await (nodes[0] as ServerChild).fixtures(members, members);
      tokens = fx.users.map((u) => u.token);
      roomId = (fx.rooms[0] as { id: string }).id;
    }
    const fixturesMs = performance.now() - started;
    started = performance.now();
    const sockets = await connectMany(
      (url, token) => LightSocket.connect(url, token),
      nodes.map((n) => n.url),
      members,
      (i) => tokens?.[i],
      250,
    );
    const connectMs = performance.now() - started;
    let joinMs: number;
    try {
      joinMs = await joinAll(sockets, () => roomId, 20);
    } catch (err) {
      closeAll(sockets);
      throw err;
    }
    return new TutorRoom(nodes, sockets, roomId, model, { fixturesMs, connectMs, joinMs });
  }

  private nodeOf(member: number): number {
    return member % this.nodes.length;
  }

  /**
   * Member `k` (mod members) asks a question the model answers with `tokens` tokens at `rate` a second; resolves
   * once the model's stream ended, the answer is `done` and every member has every piece (or 5 s later).
   */
  async answer(k: number, tokens: number, rate: number): Promise<Asked> {
    const asker = k % this.sockets.length;
    this.recorder.generatingNode = this.nodeOf(asker);
    const streamed = this.model.expect(tokens);
    const reply = (await (this.sockets[asker] as LightSocket).request("tutor:ask", {
      roomId: this.roomId,
      // Never the same question twice: an answer cache would otherwise skip the model.
      question: `How does a for loop over a list work? (bench ${randomUUID()})`,
    })) as { ok: boolean; data?: { id: string }; error?: { code: string } };
    if (!reply.ok || !reply.data) {
      this.model.forget();
      throw new Error(`tutor:ask refused: ${JSON.stringify(reply.error)}`);
    }
    const { id } = reply.data;
    let s: Streamed;
    try {
      s = await withTimeout(streamed, 20_000 + (1000 * tokens) / rate, `the model's stream of answer ${id}`);
    } catch (err) {
      this.model.forget();
      throw err;
    }
    if (!s.complete) throw new Error(`the server closed the model's stream after ${s.tokens} of ${tokens} tokens`);
    if (!(await waitUntil(() => this.done.has(id), 15_000))) throw new Error(`no tutor:done for answer ${id}`);
    const end = this.done.get(id);
    if (end?.status !== "done") throw new Error(`answer ${id} ended ${end?.status} (${String(end?.error)})`);
    await waitUntil(() => this.recorder.received(id) >= s.tokens * this.sockets.length, 5000);
    return { id, streamed: s };
  }

  /** The deliveries of `answers`; pieces of any other answer (warm-ups aside) count as stray. */
  deliveries(answers: Asked[], warmups: Asked[]): Deliveries {
    const summaries = answers.map((a) => this.recorder.summary(a.id));
    const all = samplesOf(...summaries.flatMap((s) => [s.near, s.far]));
    const far = samplesOf(...summaries.map((s) => s.far));
    const tokens = answers.reduce((n, a) => n + a.streamed.tokens, 0);
    const seconds = answers.reduce((t, a) => t + (a.streamed.lastAt - a.streamed.firstAt) / 1000, 0);
    return {
      p50: all.percentile(50),
      p90: all.percentile(90),
      p99: all.percentile(99),
      max: all.max(),
      answerP99: summaries.map((s) => samplesOf(s.near, s.far).percentile(99)),
      nearP99: this.nodes.length > 1 ? samplesOf(...summaries.map((s) => s.near)).percentile(99) : Number.NaN,
      farP99: far.percentile(99),
      expected: tokens * this.sockets.length,
      received: summaries.reduce((n, s) => n + s.unique, 0),
      duplicates: summaries.reduce((n, s) => n + s.duplicates, 0),
      stray:
        this.recorder.others([...answers, ...warmups].map((a) => a.id)) +
        summaries.reduce((n, s) => n + s.malformed, 0),
      tokensPerSec: (tokens - answers.length) / seconds,
    };
  }

  close(): void {
    closeAll(this.sockets);
  }
}
