/**
 * The baseline of bench/tutor.ts, added to the bare Socket.IO server of server-child.ts: on `tutor:ask`
 * `{ roomId, question }` it acknowledges `{ ok: true, data: { id } }`, reads the model's SSE stream (the same
 * Chat Completions request and parsing as DoctorPy's OpenAI provider, over the same `fetch`) and broadcasts
 * each token with `io.to(room).emit("tutor:delta", { roomId, answerId, seq, text })`, then `tutor:done`.
 * No auth, no validation, no queue, no persistence.
 */
import { randomUUID } from "node:crypto";
import type { Server } from "socket.io";

export interface BareLlm {
  baseUrl: string;
  model: string;
}

type AckFn = (reply: { ok: boolean; data?: unknown; error?: { code: string; message: string } }) => void;

/** Handles `tutor:ask` on every connection of `io`; rooms are `room:<roomId>` as in server-child.ts. */
export function attachBareTutor(io: Server, llm: BareLlm): void {
  io.on("connection", (socket) => {
    socket.on("tutor:ask", (payload: { roomId: string; question: string }, ack?: AckFn) => {
      const answerId = randomUUID();
      if (typeof ack === "function") ack({ ok: true, data: { id: answerId, roomId: payload.roomId } });
      stream(io, llm, payload, answerId).catch((err: unknown) => {
        io.to(`room:${payload.roomId}`).emit("tutor:done", {
          id: answerId,
          roomId: payload.roomId,
          status: "failed",
          error: String(err),
        });
      });
    });
  });
}

async function stream(io: Server, llm: BareLlm, payload: { roomId: string; question: string }, answerId: string) {
  const { roomId } = payload;
  const room = `room:${roomId}`;
  const res = await fetch(`${llm.baseUrl.replace(/\/+$/, "")}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify({
      model: llm.model,
      messages: [{ role: "user", content: payload.question }],
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  if (!res.ok || !res.body) throw new Error(`the model answered ${res.status}`);
  const decoder = new TextDecoder();
  let buffered = "";
  let seq = 0;
  let finished = false;
  for await (const bytes of res.body) {
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
      const chunk = JSON.parse(data) as { choices?: { delta?: { content?: string | null } }[] };
      const text = chunk.choices?.[0]?.delta?.content;
      if (text) io.to(room).emit("tutor:delta", { roomId, answerId, seq: ++seq, text });
    }
  }
  io.to(room).emit("tutor:done", {
    id: answerId,
    roomId,
    status: finished ? "done" : "failed",
    deltas: seq,
  });
}
