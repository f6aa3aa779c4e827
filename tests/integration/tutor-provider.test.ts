import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OpenAiProvider } from "../../server/tutor/providers/openai.ts";
import { type GenerateRequest, ProviderError, type StreamEvent } from "../../server/tutor/providers/types.ts";
import { waitFor } from "../helpers/factories.ts";
import { type FakeLlm, startFakeLlm } from "../helpers/fake-llm.ts";

let llm: FakeLlm;
beforeAll(async () => {
  llm = await startFakeLlm();
});
afterAll(() => llm.close());

const request: GenerateRequest = {
  messages: [
    { role: "system", content: "You are a tutor." },
    { role: "user", content: "What is a list?" },
  ],
  question: "What is a list?",
  language: "en",
  kind: "concept",
  level: "beginner",
  passages: [],
  maxTokens: 200,
};

const provider = (over: Partial<ConstructorParameters<typeof OpenAiProvider>[0]> = {}) =>
  new OpenAiProvider({
    baseUrl: llm.url,
    apiKey: "sk-test",
    model: "tutor-small",
    idleTimeoutMs: 2000,
    totalTimeoutMs: 10_000,
    ...over,
  });

/** Runs a generation to its end: the text received, the final event, or the error it ended with. */
async function run(p: OpenAiProvider, signal = new AbortController().signal, onDelta?: (t: string) => void) {
  let text = "";
  let done: Extract<StreamEvent, { type: "done" }> | undefined;
  let error: ProviderError | undefined;
  const times: number[] = [];
  try {
    for await (const e of p.stream(request, signal)) {
      if (e.type === "delta") {
        text += e.text;
        times.push(performance.now());
        onDelta?.(e.text);
      } else done = e;
    }
  } catch (err) {
    if (!(err instanceof ProviderError)) throw err;
    error = err;
  }
  return { text, done, error, times };
}

describe("the OpenAI-compatible provider", () => {
  it("streams the deltas, then usage and the model, and sends the prompt with the key", async () => {
    llm.queue({ kind: "stream", tokens: ["A list", " is", " an ordered", " collection."] });
    const r = await run(provider());
    expect(r.error).toBeUndefined();
    expect(r.text).toBe("A list is an ordered collection.");
    expect(r.done).toMatchObject({ model: "tutor-small", usage: { completionTokens: 4, estimated: false } });
    const sent = llm.requests.at(-1);
    expect(sent?.path).toBe("/v1/chat/completions");
    expect(sent?.authorization).toBe("Bearer sk-test");
    expect(sent?.body).toMatchObject({
      model: "tutor-small",
      stream: true,
      messages: request.messages,
      max_tokens: 200,
    });
  });

  it("delivers slow tokens as they come, not all at the end", async () => {
    llm.queue({ kind: "stream", tokens: ["one", " two", " three", " four"], delayMs: 150 });
    const r = await run(provider());
    expect(r.text).toBe("one two three four");
    expect((r.times.at(-1) as number) - (r.times[0] as number)).toBeGreaterThan(300);
  });

  it("estimates usage when the server reports none", async () => {
    llm.queue({ kind: "stream", tokens: ["x".repeat(40)], noUsage: true });
    const r = await run(provider());
    expect(r.done?.usage).toEqual({ promptTokens: expect.any(Number), completionTokens: 10, estimated: true });
  });

  it("ends a stream that breaks mid-way with broken_stream, after the text received so far", async () => {
    llm.queue({ kind: "break", tokens: ["Half", " of", " an", " answer"], after: 2, delayMs: 20 });
    const r = await run(provider());
    expect(r.text).toBe("Half of");
    expect(r.error?.kind).toBe("broken_stream");
    expect(r.done).toBeUndefined();
  });

  it("times out a model that stops sending, and closes the request", async () => {
    llm.queue({ kind: "stall", tokens: ["Thinking"], after: 1 });
    const started = performance.now();
    const r = await run(provider({ idleTimeoutMs: 300 }));
    expect(r.text).toBe("Thinking");
    expect(r.error?.kind).toBe("timeout");
    expect(performance.now() - started).toBeLessThan(3000);
    await waitFor(() => llm.requests.at(-1)?.closedEarly === true);
  });

  it("times out a whole generation that takes too long, even while tokens keep coming", async () => {
    llm.queue({ kind: "stream", tokens: Array.from({ length: 50 }, () => " tick"), delayMs: 50 });
    const r = await run(provider({ totalTimeoutMs: 400 }));
    expect(r.error?.kind).toBe("timeout");
    expect(r.text.length).toBeGreaterThan(0);
  });

  it("reports 429 as rate_limited with the server's retry delay, and other errors as refused", async () => {
    llm.queue({ kind: "status", status: 429, retryAfter: 7 }, { kind: "status", status: 500 });
    const limited = await run(provider());
    expect(limited.error).toMatchObject({ kind: "rate_limited", retryAfterSec: 7 });
    const refused = await run(provider());
    expect(refused.error?.kind).toBe("refused");
    expect(refused.error?.message).toContain("500");
  });

  it("reports an unreachable endpoint as refused", async () => {
    const r = await run(provider({ baseUrl: "http://127.0.0.1:9/v1" }));
    expect(r.error?.kind).toBe("refused");
  });

  it("cancels on abort: the error is cancelled and the model's connection is closed", async () => {
    llm.queue({ kind: "stream", tokens: Array.from({ length: 100 }, (_, i) => ` t${i}`), delayMs: 30 });
    const ctl = new AbortController();
    let seen = 0;
    const r = await run(provider(), ctl.signal, () => {
      if (++seen === 3) ctl.abort();
    });
    expect(r.error?.kind).toBe("cancelled");
    expect(seen).toBeLessThan(10);
    await waitFor(() => llm.requests.at(-1)?.closedEarly === true);
  });
});
