import { LockPayload, MutePayload, RemovePayload, RoomOnlyPayload, type RoomState } from "../../shared/realtime.ts";
import type { Deps } from "../deps.ts";
import type { RoomRow } from "../rooms/rooms.ts";
import { audited as audited_ } from "./audit.ts";
import { handle } from "./handle.ts";
import type { IoSocket } from "./types.ts";

export const roomState = (room: RoomRow): RoomState => ({
  roomId: room.id,
  chatLocked: room.chatLocked,
  tutorEnabled: room.tutorEnabled,
  tutorReview: room.tutorReview,
  endedAt: room.endedAt?.toISOString() ?? null,
});

/**
 * Moderation by owners and moderators, enforced by the rooms domain. Every action, and every refused
 * attempt, is audited; the effects on live sockets (on every node) follow from the domain's events.
 */
export function moderationHandlers(socket: IoSocket, deps: Deps): void {
  const audited = <T>(
    action: string,
    target: { targetType: string; targetId: string },
    details: Record<string, unknown>,
    run: () => Promise<T>,
  ) => audited_(socket, deps, action, target, details, run);
  const me = () => socket.data.userId;

  socket.on(
    "mod:mute",
    handle(socket, deps, "mod:mute", MutePayload, ({ roomId, userId, muted }) =>
      audited(
        muted ? "room.member_mute" : "room.member_unmute",
        { targetType: "user", targetId: userId },
        { roomId },
        async () => {
          const m = await deps.rooms.setMuted(roomId, me(), userId, muted);
          return { roomId, userId, role: m.role, muted: m.muted };
        },
      ),
    ),
  );

  socket.on(
    "mod:remove",
    handle(socket, deps, "mod:remove", RemovePayload, ({ roomId, userId, ban }) =>
      audited(
        ban ? "room.member_ban" : "room.member_remove",
        { targetType: "user", targetId: userId },
        { roomId },
        async () => {
          await deps.rooms.remove(roomId, me(), userId, ban);
          return { roomId, userId };
        },
      ),
    ),
  );

  socket.on(
    "mod:lock",
    handle(socket, deps, "mod:lock", LockPayload, ({ roomId, locked }) =>
      audited(locked ? "room.chat_lock" : "room.chat_unlock", { targetType: "room", targetId: roomId }, {}, async () =>
        roomState(await deps.rooms.setChatLocked(roomId, me(), locked)),
      ),
    ),
  );

  for (const [event, ended] of [
    ["mod:end", true],
    ["mod:reopen", false],
  ] as const) {
    socket.on(
      event,
      handle(socket, deps, event, RoomOnlyPayload, ({ roomId }) =>
        audited(
          ended ? "room.session_end" : "room.session_reopen",
          { targetType: "room", targetId: roomId },
          {},
          async () => roomState(await deps.rooms.setEnded(roomId, me(), ended)),
        ),
      ),
    );
  }
}
