import { ChatDeletePayload, ChatEditPayload, ChatSendPayload, ChatSyncPayload } from "../../shared/realtime.ts";
import type { Deps } from "../deps.ts";
import { socketAudit } from "./audit.ts";
import { handle, spend } from "./handle.ts";
import { type IoServer, type IoSocket, roomChannel } from "./types.ts";

/** Chat: persisted first, then broadcast to the room on every node, then acknowledged. */
export function chatHandlers(io: IoServer, socket: IoSocket, deps: Deps): void {
  const author = () => ({ id: socket.data.userId, displayName: socket.data.displayName });

  socket.on(
    "chat:send",
    handle(socket, deps, "chat:send", ChatSendPayload, async ({ roomId, body }) => {
      const message = await deps.chat.send(roomId, author(), body, () =>
        spend(deps.limiters.chatRoom, roomId, deps.log),
      );
      io.to(roomChannel(roomId)).emit("chat:message", message);
      return message;
    }),
  );

  socket.on(
    "chat:sync",
    handle(socket, deps, "chat:sync", ChatSyncPayload, async ({ roomId, afterSeq }) => {
      await deps.rooms.standing(roomId, socket.data.userId);
      const { items, more } = await deps.chat.since(roomId, afterSeq);
      return { messages: items, more };
    }),
  );

  socket.on(
    "chat:edit",
    handle(socket, deps, "chat:edit", ChatEditPayload, async ({ roomId, messageId, body }) => {
      const message = await deps.chat.edit(roomId, socket.data.userId, messageId, body);
      io.to(roomChannel(roomId)).emit("chat:edited", message);
      return message;
    }),
  );

  socket.on(
    "chat:delete",
    handle(socket, deps, "chat:delete", ChatDeletePayload, async ({ roomId, messageId }) => {
      const { message, byManager } = await deps.chat.delete(roomId, socket.data.userId, messageId);
      if (byManager) {
        await deps.audit.append(socketAudit(socket), {
          action: "room.message_delete",
          outcome: "success",
          targetType: "message",
          targetId: String(messageId),
          details: { roomId, authorId: message.authorId },
        });
      }
      io.to(roomChannel(roomId)).emit("chat:deleted", message);
      return message;
    }),
  );
}
