import {
  estimatePromptTokens,
  estimateTokens,
  type GenerateRequest,
  type Provider,
  ProviderError,
  type StreamEvent,
} from "./types.ts";

export interface OpenAiOptions {
  /** e.g. http://localhost:11434/v1 (Ollama), https://api.openai.com/v1 */
  baseUrl: string;
  apiKey?: string | undefined;
  model: string;
  /** until the response headers and then between two chunks of the stream */
  idleTimeoutMs: number;
  /** the whole generation */
  totalTimeoutMs: number;
}

interface Chunk {
  model?: string;
  choices?: { delta?: { content?: string | null }; finish_reason?: string | null }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
}

/**
 * Any OpenAI-compatible Chat Completions endpoint with streaming (OpenAI, Ollama, vLLM, llama.cpp server, LM
 * Studio): server-sent events of `chat.completion.chunk`, ended by `data: [DONE]`. Usage comes from the last
 * chunk when the server honours `stream_options.include_usage`, and is estimated otherwise.
 */
export class OpenAiProvider implements Provider {
  readonly name = "openai";

  constructor(private readonly options: OpenAiOptions) {}

  get defaultModel(): string {
    return this.options.model;
  }

  async *stream(request: GenerateRequest, signal: AbortSignal): AsyncIterable<StreamEvent> {
    const { baseUrl, apiKey, idleTimeoutMs, totalTimeoutMs } = this.options;
    const model = request.model ?? this.options.model;
    const timer = new AbortController();
    let timedOut: string | null = null;
    const expire = (why: string) => {
      timedOut = why;
      timer.abort();
    };
    let idle = setTimeout(() => expire(`no answer for ${idleTimeoutMs} ms`), idleTimeoutMs);
    const total = setTimeout(() => expire(`longer than ${totalTimeoutMs} ms`), totalTimeoutMs);
    const abort = AbortSignal.any([signal, timer.signal]);
    const fail = (err: unknown): ProviderError => {
      if (err instanceof ProviderError) return err;
      if (signal.aborted) return new ProviderError("cancelled", "cancelled");
      if (timedOut) return new ProviderError("timeout", `the model timed out: ${timedOut}`);
      return new ProviderError("broken_stream", `the model's stream broke: ${(err as Error).message}`);
    };

    let text = "";
    let usage: { prompt_tokens?: number; completion_tokens?: number } | null = null;
    let seenModel = model;
    let finished = false;
    try {
      let res: Response;
      try {
        res = await fetch(`${baseUrl.replace(/\/+$/, "")}/chat/completions`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            accept: "text/event-stream",
            ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
          },
          body: JSON.stringify({
            model,
            messages: request.messages,
            stream: true,
            stream_options: { include_usage: true },
            max_tokens: request.maxTokens,
            ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
          }),
          signal: abort,
        });
      } catch (err) {
        if (signal.aborted || timedOut) throw fail(err);
        throw new ProviderError("refused", `the model could not be reached: ${(err as Error).message}`);
      }
      if (res.status === 429) {
        const retry = Number(res.headers.get("retry-after"));
        await res.body?.cancel();
        throw new ProviderError(
          "rate_limited",
          "the model is rate limited",
          Number.isFinite(retry) && retry > 0 ? retry : undefined,
        );
      }
      if (!res.ok || !res.body) {
        const detail = (await res.text().catch(() => "")).slice(0, 200);
        throw new ProviderError("refused", `the model answered ${res.status}${detail ? `: ${detail}` : ""}`);
      }

      const decoder = new TextDecoder();
      let buffered = "";
      for await (const bytes of res.body) {
        clearTimeout(idle);
        idle = setTimeout(() => expire(`no token for ${idleTimeoutMs} ms`), idleTimeoutMs);
        buffered += decoder.decode(bytes as Uint8Array, { stream: true });
        let newline = buffered.indexOf("\n");
        while (newline >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          newline = buffered.indexOf("\n");
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") {
            finished = true;
            continue;
          }
          let chunk: Chunk;
          try {
            chunk = JSON.parse(data) as Chunk;
          } catch {
            throw new ProviderError("broken_stream", "the model sent an event that is not JSON");
          }
          if (chunk.model) seenModel = chunk.model;
          if (chunk.usage) usage = chunk.usage;
          const delta = chunk.choices?.[0]?.delta?.content;
          if (delta) {
            text += delta;
            yield { type: "delta", text: delta };
          }
        }
      }
      if (!finished) throw new ProviderError("broken_stream", "the model's stream ended before [DONE]");
      yield {
        type: "done",
        model: seenModel,
        usage:
          usage?.prompt_tokens !== undefined && usage.completion_tokens !== undefined
            ? { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens, estimated: false }
            : {
                promptTokens: estimatePromptTokens(request.messages),
                completionTokens: estimateTokens(text),
                estimated: true,
              },
      };
    } catch (err) {
      throw fail(err);
    } finally {
      clearTimeout(idle);
      clearTimeout(total);
      // Whatever ended the loop (done, error, a consumer that stopped early), the request is closed.
      timer.abort();
    }
  }
}
