import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { IdParam } from "../../../shared/schemas/common.ts";
import {
  HistoryPage,
  HistoryQuery,
  JoinBody,
  MemberList,
  MemberPatch,
  MemberRemoveQuery,
  PersonalRoomBody,
  Room,
  RoomCreate,
  RoomList,
  RoomMemberParams,
  RoomUpdate,
} from "../../../shared/schemas/rooms.ts";
import { AnswerListQuery, AnswerPage } from "../../../shared/schemas/tutor.ts";
import type { Deps } from "../../deps.ts";
import { AppError } from "../../errors.ts";
import { type AppContext, type AppEnv, auditContext, auditRefusal, requireAuth } from "../context.ts";
import { access, json, jsonBody, problems } from "../openapi.ts";

const tags = ["rooms"];

/**
 * Rooms: create, list mine, read, update, archive, rotate the invite code, join by code, manage members, read
 * the chat history. The permission only opens the door; the room role (checked by RoomService) decides.
 */
export function roomRoutes(app: OpenAPIHono<AppEnv>, { rooms, chat, tutor, audit }: Deps): void {
  const moderation = <T>(
    c: AppContext,
    action: string,
    target: { targetType: string; targetId: string },
    details: Record<string, unknown>,
    run: () => Promise<T>,
  ) => auditRefusal(audit, c, action, target, details, run);

  const create = createRoute({
    method: "post",
    path: "/api/v1/rooms",
    tags,
    summary: "Create a room; I become its owner (learners only while the learnersCreateRooms setting is on)",
    ...access("rooms:create", audit),
    request: { body: jsonBody(RoomCreate) },
    responses: { 201: json(Room, "The new room"), ...problems("unauthenticated", "forbidden") },
  });
  app.openapi(create, async (c) => {
    const auth = requireAuth(c);
    const room = await rooms.create(auth.user, c.req.valid("json"));
    await audit.append(auditContext(c), {
      action: "room.create",
      outcome: "success",
      targetType: "room",
      targetId: room.id,
      details: { name: room.name },
    });
    return c.json(room, 201);
  });

  const personal = createRoute({
    method: "post",
    path: "/api/v1/rooms/personal",
    tags,
    summary: "My personal room, where I work alone with the tutor (created on first call; nobody else joins it)",
    ...access("rooms:use", audit),
    request: { body: jsonBody(PersonalRoomBody) },
    responses: {
      200: json(Room, "My personal room"),
      201: json(Room, "My personal room, just created"),
      ...problems("unauthenticated", "forbidden"),
    },
  });
  app.openapi(personal, async (c) => {
    const auth = requireAuth(c);
    const { room, created } = await rooms.personal(auth.user, c.req.valid("json").language);
    if (!created) return c.json(room, 200);
    await audit.append(auditContext(c), {
      action: "room.create",
      outcome: "success",
      targetType: "room",
      targetId: room.id,
      details: { name: room.name, personal: true },
    });
    return c.json(room, 201);
  });

  const list = createRoute({
    method: "get",
    path: "/api/v1/rooms",
    tags,
    summary: "List the rooms I belong to (not archived), newest first",
    ...access("rooms:use", audit),
    responses: { 200: json(RoomList, "My rooms"), ...problems("unauthenticated", "forbidden") },
  });
  app.openapi(list, async (c) => {
    const auth = requireAuth(c);
    return c.json({ items: await rooms.listMine(auth.user.id) }, 200);
  });

  // Registered before /api/v1/rooms/{id}/... so that "join" is never read as a room id.
  const join = createRoute({
    method: "post",
    path: "/api/v1/rooms/join",
    tags,
    summary: "Join a room with its invite code (a banned user is refused)",
    ...access("rooms:use", audit),
    request: { body: jsonBody(JoinBody) },
    responses: {
      200: json(Room, "The room I now belong to"),
      ...problems("unauthenticated", "forbidden", "banned", "not_found"),
    },
  });
  app.openapi(join, async (c) => {
    const auth = requireAuth(c);
    try {
      const room = await rooms.joinByCode(auth.user.id, c.req.valid("json").code);
      await audit.append(auditContext(c), {
        action: "room.join",
        outcome: "success",
        targetType: "room",
        targetId: room.id,
        details: { role: room.myRole },
      });
      return c.json(room, 200);
    } catch (err) {
      // A banned user trying to come back is worth a trace; a wrong code is not (nothing to name).
      if (err instanceof AppError && err.code === "banned") {
        await audit.append(auditContext(c), { action: "room.join", outcome: "denied", details: { reason: "banned" } });
      }
      throw err;
    }
  });

  const get = createRoute({
    method: "get",
    path: "/api/v1/rooms/{id}",
    tags,
    summary: "Read a room I belong to (404 otherwise); the invite code only for owners and moderators",
    ...access("rooms:use", audit),
    request: { params: IdParam },
    responses: { 200: json(Room, "The room"), ...problems("unauthenticated", "forbidden", "not_found") },
  });
  app.openapi(get, async (c) => {
    const auth = requireAuth(c);
    return c.json(await rooms.get(c.req.valid("param").id, auth.user.id), 200);
  });

  const update = createRoute({
    method: "patch",
    path: "/api/v1/rooms/{id}",
    tags,
    summary: "Change a room's name, topic or language (owner or moderator)",
    ...access("rooms:use", audit),
    request: { params: IdParam, body: jsonBody(RoomUpdate) },
    responses: { 200: json(Room, "The updated room"), ...problems("unauthenticated", "forbidden", "not_found") },
  });
  app.openapi(update, async (c) => {
    const auth = requireAuth(c);
    return c.json(await rooms.update(c.req.valid("param").id, auth.user.id, c.req.valid("json")), 200);
  });

  const archive = createRoute({
    method: "post",
    path: "/api/v1/rooms/{id}/archive",
    tags,
    summary: "Archive a room (owner): it leaves everyone's list and its invite code stops working",
    ...access("rooms:use", audit),
    request: { params: IdParam },
    responses: { 200: json(Room, "The archived room"), ...problems("unauthenticated", "forbidden", "not_found") },
  });
  app.openapi(archive, async (c) => {
    const auth = requireAuth(c);
    const { id } = c.req.valid("param");
    const target = { targetType: "room", targetId: id };
    const room = await moderation(c, "room.archive", target, {}, () => rooms.archive(id, auth.user.id));
    await audit.append(auditContext(c), { action: "room.archive", outcome: "success", ...target });
    return c.json(room, 200);
  });

  const rotate = createRoute({
    method: "post",
    path: "/api/v1/rooms/{id}/invite",
    tags,
    summary: "Rotate the invite code (owner): the old code stops working",
    ...access("rooms:use", audit),
    request: { params: IdParam },
    responses: {
      200: json(Room, "The room with its new invite code"),
      ...problems("unauthenticated", "forbidden", "not_found"),
    },
  });
  app.openapi(rotate, async (c) => {
    const auth = requireAuth(c);
    const { id } = c.req.valid("param");
    const target = { targetType: "room", targetId: id };
    const room = await moderation(c, "room.invite_rotate", target, {}, () => rooms.rotateInvite(id, auth.user.id));
    await audit.append(auditContext(c), { action: "room.invite_rotate", outcome: "success", ...target });
    return c.json(room, 200);
  });

  const members = createRoute({
    method: "get",
    path: "/api/v1/rooms/{id}/members",
    tags,
    summary: "List a room's members (members only; banned users are not members)",
    ...access("rooms:use", audit),
    request: { params: IdParam },
    responses: { 200: json(MemberList, "The members"), ...problems("unauthenticated", "forbidden", "not_found") },
  });
  app.openapi(members, async (c) => {
    const auth = requireAuth(c);
    return c.json({ items: await rooms.members(c.req.valid("param").id, auth.user.id) }, 200);
  });

  const setRole = createRoute({
    method: "patch",
    path: "/api/v1/rooms/{id}/members/{userId}",
    tags,
    summary:
      "Change a member's room role (owner or moderator; only the owner appoints moderators; never the owner). " +
      "Answers the updated member list.",
    ...access("rooms:use", audit),
    request: { params: RoomMemberParams, body: jsonBody(MemberPatch) },
    responses: {
      200: json(MemberList, "The member list after the change"),
      ...problems("unauthenticated", "forbidden", "not_found"),
    },
  });
  app.openapi(setRole, async (c) => {
    const auth = requireAuth(c);
    const { id, userId } = c.req.valid("param");
    const { role } = c.req.valid("json");
    const target = { targetType: "user", targetId: userId };
    const before = await rooms.members(id, auth.user.id).catch(() => []);
    const from = before.find((m) => m.userId === userId)?.role ?? null;
    await moderation(c, "room.member_role", target, { roomId: id, to: role }, () =>
      rooms.setRole(id, auth.user.id, userId, role),
    );
    await audit.append(auditContext(c), {
      action: "room.member_role",
      outcome: "success",
      ...target,
      details: { roomId: id, from, to: role },
    });
    return c.json({ items: await rooms.members(id, auth.user.id) }, 200);
  });

  const remove = createRoute({
    method: "delete",
    path: "/api/v1/rooms/{id}/members/{userId}",
    tags,
    summary: "Remove a member (owner or moderator); with ?ban=true they cannot come back with the invite code",
    ...access("rooms:use", audit),
    request: { params: RoomMemberParams, query: MemberRemoveQuery },
    responses: { 204: { description: "Removed" }, ...problems("unauthenticated", "forbidden", "not_found") },
  });
  app.openapi(remove, async (c) => {
    const auth = requireAuth(c);
    const { id, userId } = c.req.valid("param");
    const { ban } = c.req.valid("query");
    const action = ban ? "room.member_ban" : "room.member_remove";
    const target = { targetType: "user", targetId: userId };
    await moderation(c, action, target, { roomId: id }, () => rooms.remove(id, auth.user.id, userId, ban));
    await audit.append(auditContext(c), { action, outcome: "success", ...target, details: { roomId: id } });
    return c.body(null, 204);
  });

  const history = createRoute({
    method: "get",
    path: "/api/v1/rooms/{id}/messages",
    tags,
    summary: "A page of the chat history, newest first (cursor `before`); deleted messages are empty tombstones",
    ...access("rooms:use", audit),
    request: { params: IdParam, query: HistoryQuery },
    responses: {
      200: json(HistoryPage, "A page of messages"),
      ...problems("unauthenticated", "forbidden", "not_found"),
    },
  });
  app.openapi(history, async (c) => {
    const auth = requireAuth(c);
    const { before, limit } = c.req.valid("query");
    return c.json(await chat.history(c.req.valid("param").id, auth.user.id, before, limit), 200);
  });

  const answerList = createRoute({
    method: "get",
    path: "/api/v1/rooms/{id}/answers",
    tags,
    summary:
      "A page of the tutor's answers in the room, newest first (cursor `before`); held and rejected answers show their text to owners and moderators only",
    ...access("rooms:use", audit),
    request: { params: IdParam, query: AnswerListQuery },
    responses: {
      200: json(AnswerPage, "A page of answers"),
      ...problems("unauthenticated", "forbidden", "not_found"),
    },
  });
  app.openapi(answerList, async (c) => {
    const auth = requireAuth(c);
    const { before, limit } = c.req.valid("query");
    return c.json(await tutor.history(c.req.valid("param").id, auth.user.id, before, limit), 200);
  });
}
