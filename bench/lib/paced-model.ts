/**
 * The model of bench/tutor.ts: an OpenAI-compatible Chat Completions endpoint (SSE streaming, like
 * tests/helpers/fake-llm.ts) that writes tokens at a fixed rate, each token carrying the moment it was written
 * (`⟦<ms since the epoch, µs resolution>⟧ `), so that whoever receives it measures its delay on the same clock.
 * Every process of the benchmark runs on this machine: `performance.timeOrigin + performance.now()` agrees
 * between them to well under a millisecond.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** Now, in ms since the epoch, with sub-millisecond resolution. */
export const wallMs = () => performance.timeOrigin + performance.now();

const OPEN = "⟦";
const CLOSE = "⟧";
const OPEN_BYTES = Buffer.from(OPEN);
const CLOSE_BYTES = Buffer.from(CLOSE);

/** A token stamped with the moment it is written. */
export const stampedToken = (t: number) => `${OPEN}${t.toFixed(3)}${CLOSE} `;

/** The stamp of the first stamped token in `packet` (raw bytes of a Socket.IO packet), or NaN. */
export function readStamp(packet: Buffer, from = 0): number {
  const open = packet.indexOf(OPEN_BYTES, from);
  if (open < 0) return Number.NaN;
  const start = open + OPEN_BYTES.length;
  const end = packet.indexOf(CLOSE_BYTES, start);
  return end < 0 ? Number.NaN : Number(packet.toString("latin1", start, end));
}

/** How one request was answered. */
export interface Streamed {
  /** tokens written */
  tokens: number;
  /** the stream reached `[DONE]` (false: the client went away first) */
  complete: boolean;
  /** wall-clock ms of the first and last token */
  firstAt: number;
  lastAt: number;
}

export interface PacedModel {
  /** the base URL to configure (`LLM_BASE_URL`), ending in /v1 */
  url: string;
  /**
   * The next request is answered with `tokens` tokens; resolves once its stream has ended. Requests that come
   * with nothing expected are refused (503) and counted in `unexpected`.
   */
  expect(tokens: number): Promise<Streamed>;
  /** Forgets what was expected and not requested (resolved as 0 tokens, incomplete): after a failed answer. */
  forget(): void;
  unexpected: number;
  close(): Promise<void>;
}

/** Starts the model on 127.0.0.1 (port 0), writing `tokensPerSec` tokens a second to each stream. */
export async function startPacedModel(tokensPerSec: number): Promise<PacedModel> {
  const intervalMs = 1000 / tokensPerSec;
  const queue: { tokens: number; resolve: (s: Streamed) => void }[] = [];
  const open = new Set<ServerResponse>();
  const model: PacedModel = {
    url: "",
    unexpected: 0,
    expect: (tokens) => new Promise((resolve) => queue.push({ tokens, resolve })),
    forget: () => {
      for (const job of queue.splice(0))
        job.resolve({ tokens: 0, complete: false, firstAt: Number.NaN, lastAt: Number.NaN });
    },
    close: () =>
      new Promise((resolve) => {
        for (const res of open) res.destroy();
        server.close(() => resolve());
      }),
  };

  const server: Server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const job = queue.shift();
    if (!job || req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
      model.unexpected++;
      res.writeHead(503, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: "the benchmark's model expected no request" } }));
      return;
    }
    const body = JSON.parse(Buffer.concat(chunks).toString() || "{}") as { model?: string };
    const name = body.model ?? "bench";
    const chunk = (content: string | null, finish: string | null = null) =>
      `data: ${JSON.stringify({
        id: "chatcmpl-bench",
        object: "chat.completion.chunk",
        model: name,
        choices: [{ index: 0, delta: content === null ? {} : { content }, finish_reason: finish }],
      })}\n\n`;
    open.add(res);
    const result: Streamed = { tokens: 0, complete: false, firstAt: Number.NaN, lastAt: Number.NaN };
    res.on("close", () => {
      open.delete(res);
      job.resolve(result);
    });
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    // Token k is due at start + k × interval (no drift); one token per turn of the event loop, so that a late
    // timer does not turn into a burst. The stamp is taken as the token is written.
    const start = performance.now();
    const next = () => {
      if (res.destroyed) return;
      if (result.tokens === job.tokens) {
        res.write(chunk(null, "stop"));
        res.write(
          `data: ${JSON.stringify({ id: "chatcmpl-bench", object: "chat.completion.chunk", model: name, choices: [], usage: { prompt_tokens: 100, completion_tokens: job.tokens, total_tokens: 100 + job.tokens } })}\n\n`,
        );
        result.complete = true;
        res.end("data: [DONE]\n\n");
        return;
      }
      const t = wallMs();
      res.write(chunk(stampedToken(t)));
      if (result.tokens === 0) result.firstAt = t;
      result.lastAt = t;
      result.tokens++;
      const wait = start + result.tokens * intervalMs - performance.now();
      if (wait > 0) setTimeout(next, wait);
      else setImmediate(next);
    };
    next();
  });
  // Node's HTTP server disables Nagle's algorithm on its sockets: each token leaves at once.
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  model.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  return model;
}
