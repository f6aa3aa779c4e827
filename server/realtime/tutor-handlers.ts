import { TutorAnswerPayload, TutorAskPayload, TutorReviewPayload } from "../../shared/realtime.ts";
import type { TutorDelta } from "../../shared/schemas/tutor.ts";
import type { Deps } from "../deps.ts";
import { AppError } from "../errors.ts";
import { isManager } from "../rooms/rooms.ts";
import { type AnswerRecord, toAnswer } from "../tutor/tutor-service.ts";
import { audited, socketAudit } from "./audit.ts";
import { handle } from "./handle.ts";
import { type IoServer, type IoSocket, roomChannel, userChannel } from "./types.ts";

/** `tutor:ask`, `tutor:cancel`, `tutor:get` and `tutor:review`. */
export function tutorHandlers(socket: IoSocket, deps: Deps): void {
  const { tutor } = deps;
  const me = () => socket.data.userId;

  socket.on(
    "tutor:ask",
    handle(socket, deps, "tutor:ask", TutorAskPayload, (payload) =>
      tutor.ask(payload.roomId, { id: me(), displayName: socket.data.displayName }, payload),
    ),
  );

  socket.on(
    "tutor:cancel",
    handle(socket, deps, "tutor:cancel", TutorAnswerPayload, async ({ roomId, answerId }) => {
      const target = { targetType: "answer", targetId: answerId };
      // Stopping someone else's question is moderation: audited when done, and when refused.
      let outcome: Awaited<ReturnType<typeof tutor.cancel>>;
      try {
        outcome = await tutor.cancel(roomId, me(), answerId);
      } catch (err) {
        if (err instanceof AppError && err.code === "forbidden") {
          await deps.audit.append(socketAudit(socket), {
            action: "room.answer_cancel",
            outcome: "denied",
            ...target,
            details: { roomId, reason: err.code },
          });
        }
        throw err;
      }
      if (outcome.byManager) {
        await deps.audit.append(socketAudit(socket), {
          action: "room.answer_cancel",
          outcome: "success",
          ...target,
          details: { roomId },
        });
      }
      return outcome.answer;
    }),
  );

  socket.on(
    "tutor:get",
    handle(socket, deps, "tutor:get", TutorAnswerPayload, ({ roomId, answerId }) => tutor.get(roomId, me(), answerId)),
  );

  socket.on(
    "tutor:review",
    handle(socket, deps, "tutor:review", TutorReviewPayload, ({ roomId, answerId, approve }) =>
      audited(
        socket,
        deps,
        approve ? "room.answer_approve" : "room.answer_reject",
        { targetType: "answer", targetId: answerId },
        { roomId },
        () => tutor.review(roomId, me(), answerId, approve),
      ),
    ),
  );
}

/**
 * Sends the tutor's announcements to the rooms, on every node. Under teacher review, the pieces of an answer
 * and its held text go to the room's owners and moderators only (all their connections); the others see that
 * an answer is being written and, once approved, the whole of it.
 */
export function applyTutorEvents(io: IoServer, deps: Deps): () => void {
  const { tutor, rooms } = deps;
  const managers = async (roomId: string) =>
    (await rooms.roles(roomId)).filter((m) => isManager(m.role)).map((m) => userChannel(m.userId));
  const toRoom = (record: AnswerRecord, event: "tutor:queued" | "tutor:started" | "tutor:done" | "tutor:reviewed") => {
    const channel = roomChannel(record.row.roomId);
    if (!record.row.review) {
      io.to(channel).emit(event, toAnswer(record, false));
      return;
    }
    managers(record.row.roomId).then(
      (mods) => {
        io.to(channel).except(mods).emit(event, toAnswer(record, false));
        if (mods.length > 0) io.to(mods).emit(event, toAnswer(record, true));
      },
      (err: unknown) => deps.log.warn({ err: String(err) }, "tutor announcement failed"),
    );
  };

  // Each announcement of an answer's state goes out under the event of the same stage.
  const states = [
    ["queued", "tutor:queued"],
    ["started", "tutor:started"],
    ["done", "tutor:done"],
    ["reviewed", "tutor:reviewed"],
  ] as const;
  const stateListeners = states.map(([stage, event]) => [stage, (r: AnswerRecord) => toRoom(r, event)] as const);
  const onDelta = ({ delta, review }: { delta: TutorDelta; review: boolean }) => {
    if (!review) {
      io.to(roomChannel(delta.roomId)).emit("tutor:delta", delta);
      return;
    }
    managers(delta.roomId).then(
      (mods) => {
        if (mods.length > 0) io.to(mods).emit("tutor:delta", delta);
      },
      (err: unknown) => deps.log.warn({ err: String(err) }, "tutor delta failed"),
    );
  };
  const onCancel = (answerId: string) => tutor.abort(answerId);

  for (const [stage, listener] of stateListeners) tutor.events.on(stage, listener);
  tutor.events.on("delta", onDelta);
  io.on("tutor:cancel", onCancel);
  // One node alone has no one to tell (and its in-memory adapter has no server-side emit).
  if (deps.redis) tutor.cancelElsewhere = (answerId) => io.serverSideEmit("tutor:cancel", answerId);
  tutor.start();
  return () => {
    for (const [stage, listener] of stateListeners) tutor.events.off(stage, listener);
    tutor.events.off("delta", onDelta);
    io.off("tutor:cancel", onCancel);
  };
}
