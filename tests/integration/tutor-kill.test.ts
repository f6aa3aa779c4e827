import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RoomJoinResult } from "../../shared/realtime.ts";
import type { AccessToken } from "../../shared/schemas/auth.ts";
import type { Room } from "../../shared/schemas/rooms.ts";
import type { Answer, AnswerPage } from "../../shared/schemas/tutor.ts";
import { registerUser, type TestUser, waitFor } from "../helpers/factories.ts";
import { type NodeProcess, type ProcessCluster, startProcessCluster } from "../helpers/node-process.ts";
import { AnswerView, type ClientSocket, connect, ackData as data, request } from "../helpers/sockets.ts";

/**
 * A node that dies mid-answer (SIGKILL: no goodbye). Its lease on the room's queue expires; the next node whose
 * sweep finds the room stuck ends the answer as `interrupted` with the text its log holds, and answers the
 * question queued behind it.
 */
let cluster: ProcessCluster;
let room: Room;
let owner: TestUser;
const sockets: ClientSocket[] = [];
const nodeA = () => cluster.nodes[0] as NodeProcess;
const nodeB = () => cluster.nodes[1] as NodeProcess;

async function inRoom(node: NodeProcess, u: TestUser): Promise<{ socket: ClientSocket; view: AnswerView }> {
  const token = (await u.client.post<AccessToken>("/api/v1/auth/token")).body.token;
  const socket = await connect(node.url, { token });
  sockets.push(socket);
  const view = new AnswerView(socket);
  view.joined(data(await request<RoomJoinResult>(socket, "room:join", { roomId: room.id })).answers);
  return { socket, view };
}

beforeAll(async () => {
  // 40 ms between the offline tutor's words: an answer streams for several seconds.
  cluster = await startProcessCluster(2, { TUTOR_OFFLINE_DELAY_MS: "40" });
  owner = await registerUser(nodeA().url, "Owner");
  room = (await owner.client.post<Room>("/api/v1/rooms", { name: "Doomed", language: "en" })).body;
}, 60_000);
afterAll(async () => {
  for (const s of sockets) s.close();
  await cluster?.close();
});

describe("the tutor when a node is killed", () => {
  it("ends the dead node's answer as interrupted, keeps its text, and answers the next question", async () => {
    const bob = await registerUser(nodeB().url, "Bob");
    await bob.client.post("/api/v1/rooms/join", { code: room.inviteCode });
    const onA = await inRoom(nodeA(), owner);
    const onB = await inRoom(nodeB(), bob);

    // Asked on A, so A takes the room's lease and generates.
    const doomed = data(
      await request<Answer>(onA.socket, "tutor:ask", { roomId: room.id, question: "What is a class?" }),
    );
    await waitFor(() => (onB.view.streamed(doomed.id).deltas ?? 0) >= 5, 15_000);
    const next = data(
      await request<Answer>(onB.socket, "tutor:ask", { roomId: room.id, question: "What is a tuple?" }),
    );
    const seenBeforeDeath = onB.view.streamed(doomed.id).text;
    nodeA().kill("SIGKILL");

    // Within the lease (15 s) and a sweep (5 s), node B takes over.
    const ended = await waitFor(() => {
      const a = onB.view.get(doomed.id);
      return a && a.status !== "streaming" ? a : undefined;
    }, 40_000);
    expect(ended).toMatchObject({ status: "failed", error: "interrupted" });
    expect(ended.text.startsWith(seenBeforeDeath)).toBe(true);
    expect(ended.text.length).toBeGreaterThan(0);
    const answered = await waitFor(() => {
      const a = onB.view.get(next.id);
      return a?.status === "done" ? a : undefined;
    }, 40_000);
    expect(onB.view.streamed(next.id).text).toBe(answered.text);
    const stored = (await bob.client.get<AnswerPage>(`/api/v1/rooms/${room.id}/answers`)).body.items;
    expect(stored.find((a) => a.id === doomed.id)).toMatchObject({ status: "failed", error: "interrupted" });
  }, 90_000);
});
