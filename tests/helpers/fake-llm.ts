import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * How the fake model answers one request:
 * - `stream`: the tokens as SSE chunks, `delayMs` apart, then usage (unless `noUsage`) and `[DONE]`;
 * - `break`: the first `after` tokens, then the connection is destroyed (no [DONE]);
 * - `stall`: headers and the first `after` tokens, then nothing (the client must time out);
 * - `status`: an HTTP error (429 with `retryAfter`, 500, ...) and a JSON body.
 */
export type Script =
  | { kind: "stream"; tokens: string[]; delayMs?: number; noUsage?: boolean }
  | { kind: "break"; tokens: string[]; after: number; delayMs?: number }
  | { kind: "stall"; tokens: string[]; after: number }
  | { kind: "status"; status: number; retryAfter?: number };

export interface RecordedRequest {
  path: string;
  authorization: string | undefined;
  body: { model: string; messages: { role: string; content: string }[]; stream: boolean; [k: string]: unknown };
  /** set when the client closed the connection before the answer ended */
  closedEarly: boolean;
}

/**
 * A small OpenAI-compatible Chat Completions server over real HTTP, for the tests: it answers each request with
 * the next script queued (or `fallback`), and records what it was sent.
 */
export interface FakeLlm {
  url: string;
  requests: RecordedRequest[];
  queue(...scripts: Script[]): void;
  fallback: Script;
  /** `POST .../embeddings` requests received, whatever their answer (they are not in `requests`) */
  embeddingRequests: number;
  /** every text embedded successfully, in order of arrival */
  embedded: string[];
  /** when set, `POST .../embeddings` answers this status and a JSON error instead of vectors */
  embeddingsStatus: number | undefined;
  /** with `embeddingsStatus` 429: the retry-after header, in seconds */
  embeddingsRetryAfter: number | undefined;
  /** delay before answering `POST .../embeddings` (a client with a shorter timeout must give up) */
  embeddingsDelayMs: number;
  close(): Promise<void>;
}

/** Dimensions of the fake embeddings. */
export const FAKE_EMBEDDING_DIMS = 256;

/**
 * The fake's embedding of a text, deterministic: its lower-cased, accent-stripped word tokens hashed with
 * 32-bit FNV-1a into 256 dimensions, counted, then L2-normalised (all zeros when the text has no word). Texts
 * sharing words are close, as with a real model on paraphrases that keep some vocabulary.
 */
export function fakeEmbedding(text: string): number[] {
  const vector = new Array<number>(FAKE_EMBEDDING_DIMS).fill(0);
  const folded = text.normalize("NFKD").replace(/\p{M}/gu, "").toLowerCase();
  for (const [word] of folded.matchAll(/[\p{L}\p{N}_]+/gu)) {
    let hash = 0x811c9dc5;
    for (let i = 0; i < word.length; i++) {
      hash ^= word.charCodeAt(i);
      hash = Math.imul(hash, 0x01000193) >>> 0;
    }
    const dim = hash % FAKE_EMBEDDING_DIMS;
    vector[dim] = (vector[dim] as number) + 1;
  }
  const norm = Math.hypot(...vector);
  return norm === 0 ? vector : vector.map((x) => x / norm);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startFakeLlm(): Promise<FakeLlm> {
  const scripts: Script[] = [];
  const requests: RecordedRequest[] = [];
  const open = new Set<ServerResponse>();
  const fake: FakeLlm = {
    url: "",
    requests,
    queue: (...s) => void scripts.push(...s),
    fallback: { kind: "stream", tokens: ["Hello", " from", " the", " fake", " model."] },
    embeddingRequests: 0,
    embedded: [],
    embeddingsStatus: undefined,
    embeddingsRetryAfter: undefined,
    embeddingsDelayMs: 0,
    close: () =>
      new Promise((resolve) => {
        for (const res of open) res.destroy();
        server.close(() => resolve());
      }),
  };

  const server: Server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (req.method === "POST" && req.url?.endsWith("/embeddings")) {
      await answerEmbeddings(fake, JSON.parse(Buffer.concat(chunks).toString() || "{}"), res, open);
      return;
    }
    const record: RecordedRequest = {
      path: req.url ?? "",
      authorization: req.headers.authorization,
      body: JSON.parse(Buffer.concat(chunks).toString() || "{}"),
      closedEarly: false,
    };
    requests.push(record);
    open.add(res);
    let ended = false;
    res.on("close", () => {
      open.delete(res);
      if (!ended) record.closedEarly = true;
    });
    const script = scripts.shift() ?? fake.fallback;
    const model = record.body.model ?? "fake";
    const chunk = (content: string | null, finish: string | null = null) =>
      `data: ${JSON.stringify({
        id: "chatcmpl-fake",
        object: "chat.completion.chunk",
        model,
        choices: [{ index: 0, delta: content === null ? {} : { content }, finish_reason: finish }],
      })}\n\n`;

    if (script.kind === "status") {
      res.writeHead(script.status, {
        "content-type": "application/json",
        ...(script.retryAfter ? { "retry-after": String(script.retryAfter) } : {}),
      });
      ended = true;
      res.end(JSON.stringify({ error: { message: `fake error ${script.status}` } }));
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    const upTo = script.kind === "stream" ? script.tokens.length : script.after;
    for (let i = 0; i < upTo; i++) {
      if (res.destroyed) return;
      res.write(chunk(script.tokens[i] as string));
      const delay = script.kind === "stall" ? 0 : (script.delayMs ?? 0);
      if (delay > 0) await sleep(delay);
    }
    if (script.kind === "break") {
      res.destroy();
      return;
    }
    if (script.kind === "stall") return; // headers and a few tokens, then silence until the client gives up
    res.write(chunk(null, "stop"));
    if (!script.noUsage) {
      const completion = script.tokens.length;
      const prompt = record.body.messages.reduce((n, m) => n + m.content.length, 0);
      res.write(
        `data: ${JSON.stringify({ id: "chatcmpl-fake", object: "chat.completion.chunk", model, choices: [], usage: { prompt_tokens: Math.ceil(prompt / 4), completion_tokens: completion, total_tokens: completion } })}\n\n`,
      );
    }
    ended = true;
    res.end("data: [DONE]\n\n");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  return fake;
}

/**
 * Answers an OpenAI embeddings request with `fakeEmbedding` of each input. `data` is listed in reverse order on
 * purpose: clients must match vectors to inputs by `index`, as the API allows servers to reorder them.
 */
async function answerEmbeddings(
  fake: FakeLlm,
  body: { model?: string; input?: string | string[] },
  res: ServerResponse,
  open: Set<ServerResponse>,
): Promise<void> {
  fake.embeddingRequests++;
  open.add(res);
  res.on("close", () => open.delete(res));
  if (fake.embeddingsDelayMs > 0) await sleep(fake.embeddingsDelayMs);
  if (res.destroyed) return;
  const status = fake.embeddingsStatus;
  if (status !== undefined) {
    const retryAfter = fake.embeddingsRetryAfter;
    res.writeHead(status, {
      "content-type": "application/json",
      ...(retryAfter ? { "retry-after": String(retryAfter) } : {}),
    });
    res.end(JSON.stringify({ error: { message: `fake error ${status}` } }));
    return;
  }
  const input = typeof body.input === "string" ? [body.input] : (body.input ?? []);
  fake.embedded.push(...input);
  const data = input.map((text, index) => ({ object: "embedding", index, embedding: fakeEmbedding(text) })).reverse();
  const tokens = input.reduce((n, t) => n + Math.ceil(t.length / 4), 0);
  res.writeHead(200, { "content-type": "application/json" });
  res.end(
    JSON.stringify({
      object: "list",
      data,
      model: body.model ?? "fake-embed",
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    }),
  );
}
