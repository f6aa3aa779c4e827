import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { messages } from "../../db/schema.ts";
import type { AuditPage } from "../../shared/schemas/admin.ts";
import type { Problem } from "../../shared/schemas/common.ts";
import type { AppSettings, HistoryPage, MemberList, Room, RoomList } from "../../shared/schemas/rooms.ts";
import { registerUser, type TestUser, userWithRole } from "../helpers/factories.ts";
import type { Client } from "../helpers/http.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
let admin: TestUser;
let teacher: TestUser;

beforeAll(async () => {
  server = await startServer();
  admin = await registerUser(server.url, "Rooms Admin");
  teacher = await userWithRole(server.url, admin.client, "teacher");
});
afterAll(() => server.close());

const learner = (name = "Learner") => registerUser(server.url, name);

async function createRoom(owner: Client, name = "Algorithms"): Promise<Room> {
  const res = await owner.post<Room>("/api/v1/rooms", { name, topic: "sorting", language: "fr" });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

async function join(c: Client, code: string): Promise<Room> {
  const res = await c.post<Room>("/api/v1/rooms/join", { code });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

/** A room owned by the teacher, with a moderator, a member and an observer. */
async function populatedRoom() {
  const room = await createRoom(teacher.client);
  const code = room.inviteCode as string;
  const [mod, member, observer] = [await learner("Mod"), await learner("Member"), await learner("Observer")];
  for (const u of [mod, member, observer]) await join(u.client, code);
  const base = `/api/v1/rooms/${room.id}`;
  expect((await teacher.client.patch(`${base}/members/${mod.me.user.id}`, { role: "moderator" })).status).toBe(200);
  expect((await teacher.client.patch(`${base}/members/${observer.me.user.id}`, { role: "observer" })).status).toBe(200);
  return { room, code, base, mod, member, observer };
}

function expectProblem(res: { status: number; headers: Headers; body: unknown }, status: number, code: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect((res.body as Problem).code).toBe(code);
}

async function auditEntries(query: Record<string, string>) {
  const res = await admin.client.get<AuditPage>(`/api/v1/admin/audit?${new URLSearchParams(query)}`);
  expect(res.status).toBe(200);
  return res.body.items;
}

describe("rooms: create, list, read, update", () => {
  it("creates a room owned by the caller, with an invite code, and lists it", async () => {
    const room = await createRoom(teacher.client, "Recursion");
    expect(room).toMatchObject({
      name: "Recursion",
      topic: "sorting",
      language: "fr",
      ownerId: teacher.me.user.id,
      myRole: "owner",
      chatLocked: false,
      endedAt: null,
      archivedAt: null,
    });
    expect(room.inviteCode).toMatch(/^[a-z2-7]{10}$/);
    const list = await teacher.client.get<RoomList>("/api/v1/rooms");
    expect(list.status).toBe(200);
    expect(list.body.items.map((r) => r.id)).toContain(room.id);
    const got = await teacher.client.get<Room>(`/api/v1/rooms/${room.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(room);

    const [entry] = await auditEntries({ action: "room.create", targetId: room.id });
    expect(entry).toMatchObject({ actorId: teacher.me.user.id, outcome: "success", targetType: "room" });
  });

  it("lets a learner create a room by default", async () => {
    const l = await learner();
    const room = await createRoom(l.client);
    expect(room.myRole).toBe("owner");
  });

  it("hides a room from non-members (404 on get, members and messages)", async () => {
    const room = await createRoom(teacher.client);
    const outsider = await learner("Outsider");
    for (const path of ["", "/members", "/messages"]) {
      expectProblem(await outsider.client.get(`/api/v1/rooms/${room.id}${path}`), 404, "not_found");
    }
    expect((await outsider.client.get<RoomList>("/api/v1/rooms")).body.items).toEqual([]);
    expectProblem(await outsider.client.get(`/api/v1/rooms/${randomUUID()}`), 404, "not_found");
  });

  it("lets owners and moderators update a room, not members", async () => {
    const { base, mod, member, observer } = await populatedRoom();
    const byOwner = await teacher.client.patch<Room>(base, { name: "Graphs" });
    expect(byOwner.status).toBe(200);
    expect(byOwner.body.name).toBe("Graphs");
    const byMod = await mod.client.patch<Room>(base, { topic: "BFS", language: "en" });
    expect(byMod.status).toBe(200);
    expect(byMod.body).toMatchObject({ name: "Graphs", topic: "BFS", language: "en", myRole: "moderator" });
    expectProblem(await member.client.patch(base, { name: "Mine" }), 403, "forbidden");
    expectProblem(await observer.client.patch(base, { name: "Mine" }), 403, "forbidden");
    expect((await member.client.get<Room>(base)).body.name).toBe("Graphs");
  });

  it("shows the invite code to owners and moderators only", async () => {
    const { code, base, mod, member, observer } = await populatedRoom();
    expect((await teacher.client.get<Room>(base)).body.inviteCode).toBe(code);
    expect((await mod.client.get<Room>(base)).body.inviteCode).toBe(code);
    expect((await member.client.get<Room>(base)).body.inviteCode).toBeNull();
    expect((await observer.client.get<Room>(base)).body.inviteCode).toBeNull();
    const memberList = await member.client.get<RoomList>("/api/v1/rooms");
    expect(memberList.body.items[0]?.inviteCode).toBeNull();
  });
});

describe("rooms: joining, invite codes, archiving", () => {
  it("joins by code as a member, idempotently, and audits it", async () => {
    const room = await createRoom(teacher.client);
    const l = await learner();
    const joined = await join(l.client, room.inviteCode as string);
    expect(joined).toMatchObject({ id: room.id, myRole: "member", inviteCode: null });
    expect((await join(l.client, room.inviteCode as string)).myRole).toBe("member");
    expect((await join(teacher.client, room.inviteCode as string)).myRole).toBe("owner");
    const members = await teacher.client.get<MemberList>(`/api/v1/rooms/${room.id}/members`);
    expect(members.status).toBe(200);
    expect(members.body.items.map((m) => [m.userId, m.role])).toEqual([
      [teacher.me.user.id, "owner"],
      [l.me.user.id, "member"],
    ]);
    const entries = await auditEntries({ action: "room.join", targetId: room.id });
    expect(entries.filter((e) => e.actorId === l.me.user.id && e.outcome === "success").length).toBe(2);
  });

  it("answers 404 for an unknown code", async () => {
    const l = await learner();
    expectProblem(await l.client.post("/api/v1/rooms/join", { code: "aaaaaaaaaa" }), 404, "not_found");
  });

  it("lets only the owner rotate the code; the old code then answers 404", async () => {
    const { code, base, mod, member } = await populatedRoom();
    expectProblem(await mod.client.post(`${base}/invite`), 403, "forbidden");
    expectProblem(await member.client.post(`${base}/invite`), 403, "forbidden");
    const rotated = await teacher.client.post<Room>(`${base}/invite`);
    expect(rotated.status).toBe(200);
    expect(rotated.body.inviteCode).toMatch(/^[a-z2-7]{10}$/);
    expect(rotated.body.inviteCode).not.toBe(code);
    const l = await learner();
    expectProblem(await l.client.post("/api/v1/rooms/join", { code }), 404, "not_found");
    await join(l.client, rotated.body.inviteCode as string);
    const entries = await auditEntries({ action: "room.invite_rotate", targetId: rotated.body.id });
    expect(entries.map((e) => e.outcome).sort()).toEqual(["denied", "denied", "success"]);
  });

  it("lets only the owner archive; an archived room leaves the lists and cannot be joined", async () => {
    const { room, code, base, mod, member } = await populatedRoom();
    expectProblem(await mod.client.post(`${base}/archive`), 403, "forbidden");
    expectProblem(await member.client.post(`${base}/archive`), 403, "forbidden");
    const archived = await teacher.client.post<Room>(`${base}/archive`);
    expect(archived.status).toBe(200);
    expect(archived.body.archivedAt).not.toBeNull();
    for (const u of [teacher, member]) {
      expect((await u.client.get<RoomList>("/api/v1/rooms")).body.items.map((r) => r.id)).not.toContain(room.id);
    }
    expectProblem(await (await learner()).client.post("/api/v1/rooms/join", { code }), 404, "not_found");
    expect((await auditEntries({ action: "room.archive", targetId: room.id, outcome: "success" })).length).toBe(1);
  });
});

describe("rooms: managing members", () => {
  it("lets the owner appoint moderators and change roles, and audits from/to", async () => {
    const { base, member } = await populatedRoom();
    const res = await teacher.client.patch<MemberList>(`${base}/members/${member.me.user.id}`, { role: "observer" });
    expect(res.status).toBe(200);
    expect(res.body.items.find((m) => m.userId === member.me.user.id)?.role).toBe("observer");
    const [entry] = await auditEntries({ action: "room.member_role", targetId: member.me.user.id });
    expect(entry).toMatchObject({
      actorId: teacher.me.user.id,
      outcome: "success",
      targetType: "user",
      details: { from: "member", to: "observer" },
    });
    expect((await member.client.get<Room>(base)).body.myRole).toBe("observer");
  });

  it("refuses members and observers any management", async () => {
    const { base, mod, member, observer } = await populatedRoom();
    for (const actor of [member, observer]) {
      const other = actor === member ? observer : member;
      expectProblem(
        await actor.client.patch(`${base}/members/${other.me.user.id}`, { role: "member" }),
        403,
        "forbidden",
      );
      expectProblem(await actor.client.delete(`${base}/members/${other.me.user.id}`), 403, "forbidden");
      expectProblem(await actor.client.delete(`${base}/members/${mod.me.user.id}?ban=true`), 403, "forbidden");
    }
    const denied = await auditEntries({ action: "room.member_remove", actorId: member.me.user.id });
    expect(denied[0]).toMatchObject({ outcome: "denied", details: { reason: "forbidden" } });
  });

  it("lets a moderator manage members but not appoint moderators nor touch other moderators", async () => {
    const { base, mod, member, observer } = await populatedRoom();
    const mod2 = await learner("Mod 2");
    await join(mod2.client, (await teacher.client.get<Room>(base)).body.inviteCode as string);
    expect((await teacher.client.patch(`${base}/members/${mod2.me.user.id}`, { role: "moderator" })).status).toBe(200);

    expectProblem(
      await mod.client.patch(`${base}/members/${member.me.user.id}`, { role: "moderator" }),
      403,
      "forbidden",
    );
    expectProblem(await mod.client.patch(`${base}/members/${mod2.me.user.id}`, { role: "member" }), 403, "forbidden");
    expectProblem(await mod.client.delete(`${base}/members/${mod2.me.user.id}`), 403, "forbidden");
    const ok = await mod.client.patch<MemberList>(`${base}/members/${observer.me.user.id}`, { role: "member" });
    expect(ok.status).toBe(200);
    expect(ok.body.items.find((m) => m.userId === observer.me.user.id)?.role).toBe("member");
    expect((await mod.client.delete(`${base}/members/${observer.me.user.id}`)).status).toBe(204);
    const denied = await auditEntries({ action: "room.member_role", actorId: mod.me.user.id, outcome: "denied" });
    expect(denied.length).toBe(2);
  });

  it("lets nobody change or remove the owner", async () => {
    const { base, mod } = await populatedRoom();
    const ownerId = teacher.me.user.id;
    for (const actor of [teacher, mod]) {
      expectProblem(await actor.client.patch(`${base}/members/${ownerId}`, { role: "member" }), 403, "forbidden");
      expectProblem(await actor.client.delete(`${base}/members/${ownerId}`), 403, "forbidden");
      expectProblem(await actor.client.delete(`${base}/members/${ownerId}?ban=true`), 403, "forbidden");
    }
    expect((await teacher.client.get<Room>(base)).body.myRole).toBe("owner");
  });

  it("answers 404 for a target who is not a member", async () => {
    const { base } = await populatedRoom();
    expectProblem(await teacher.client.patch(`${base}/members/${randomUUID()}`, { role: "member" }), 404, "not_found");
    expectProblem(await teacher.client.delete(`${base}/members/${randomUUID()}`), 404, "not_found");
  });

  it("lets a removed user rejoin with the code", async () => {
    const { room, code, base, member } = await populatedRoom();
    expect((await teacher.client.delete(`${base}/members/${member.me.user.id}?ban=false`)).status).toBe(204);
    expectProblem(await member.client.get(base), 404, "not_found");
    expect((await member.client.get<RoomList>("/api/v1/rooms")).body.items.map((r) => r.id)).not.toContain(room.id);
    expect((await join(member.client, code)).myRole).toBe("member");
    const [entry] = await auditEntries({ action: "room.member_remove", targetId: member.me.user.id });
    expect(entry).toMatchObject({ outcome: "success", details: { roomId: room.id } });
  });

  it("keeps a banned user out: absent from members, 404 on the room, 403 banned on rejoin", async () => {
    const { room, code, base, mod, member } = await populatedRoom();
    expect((await mod.client.delete(`${base}/members/${member.me.user.id}?ban=true`)).status).toBe(204);
    const members = await teacher.client.get<MemberList>(`${base}/members`);
    expect(members.body.items.map((m) => m.userId)).not.toContain(member.me.user.id);
    expectProblem(await member.client.get(base), 404, "not_found");
    expectProblem(await member.client.get(`${base}/messages`), 404, "not_found");
    expect((await member.client.get<RoomList>("/api/v1/rooms")).body.items).toEqual([]);
    expectProblem(await member.client.post("/api/v1/rooms/join", { code }), 403, "banned");
    // and the ban is not undone by managing the (banned) target again
    expectProblem(
      await teacher.client.patch(`${base}/members/${member.me.user.id}`, { role: "member" }),
      404,
      "not_found",
    );

    const [ban] = await auditEntries({ action: "room.member_ban", targetId: member.me.user.id });
    expect(ban).toMatchObject({ actorId: mod.me.user.id, outcome: "success", details: { roomId: room.id } });
    const [refused] = await auditEntries({ action: "room.join", actorId: member.me.user.id, outcome: "denied" });
    expect(refused?.details).toMatchObject({ reason: "banned" });
  });
});

describe("rooms: chat history", () => {
  it("pages ~30 messages newest first with a `before` cursor, with tombstones", async () => {
    const { room, base, member, observer } = await populatedRoom();
    const author = { id: member.me.user.id, displayName: member.me.user.displayName };
    const sent = [];
    for (let i = 0; i < 31; i++) sent.push(await server.deps.chat.send(room.id, author, `message ${i}`));
    const deleted = sent[10];
    if (!deleted) throw new Error("no message");
    await server.deps.dbh.db.update(messages).set({ deletedAt: new Date() }).where(eq(messages.id, deleted.id));

    const seen: HistoryPage["items"] = [];
    let before: number | null = null;
    let pages = 0;
    do {
      const query: string = before ? `?limit=12&before=${before}` : "?limit=12";
      const res = await observer.client.get<HistoryPage>(`${base}/messages${query}`);
      expect(res.status).toBe(200);
      seen.push(...res.body.items);
      before = res.body.nextBefore;
      pages++;
    } while (before !== null);
    expect(pages).toBe(3);
    expect(seen.map((m) => m.id)).toEqual(sent.map((m) => m.id).reverse());
    expect(new Set(seen.map((m) => m.id)).size).toBe(31);
    expect(seen[0]).toMatchObject({ body: "message 30", authorId: member.me.user.id, authorName: "Member" });
    const tomb = seen.find((m) => m.id === deleted.id);
    expect(tomb?.body).toBe("");
    expect(tomb?.deletedAt).not.toBeNull();

    const dflt = await teacher.client.get<HistoryPage>(`${base}/messages`);
    expect(dflt.body.items.length).toBe(20);
    expect(dflt.body.nextBefore).toBe(dflt.body.items.at(-1)?.id);
  });

  it("answers an empty page for a room without messages", async () => {
    const room = await createRoom(teacher.client);
    const res = await teacher.client.get<HistoryPage>(`/api/v1/rooms/${room.id}/messages`);
    expect(res.body).toEqual({ items: [], nextBefore: null });
  });
});

describe("admin settings: learnersCreateRooms", () => {
  it("is readable and writable by admins only, audited, and decides whether learners create rooms", async () => {
    const l = await learner();
    expectProblem(await l.client.get("/api/v1/admin/settings"), 403, "forbidden");
    expectProblem(
      await teacher.client.patch("/api/v1/admin/settings", { learnersCreateRooms: false }),
      403,
      "forbidden",
    );
    expect((await admin.client.get<AppSettings>("/api/v1/admin/settings")).body).toMatchObject({
      learnersCreateRooms: true,
    });

    const off = await admin.client.patch<AppSettings>("/api/v1/admin/settings", { learnersCreateRooms: false });
    expect(off.status).toBe(200);
    expect(off.body).toMatchObject({ learnersCreateRooms: false });
    expect((await admin.client.get<AppSettings>("/api/v1/admin/settings")).body).toMatchObject({
      learnersCreateRooms: false,
    });
    try {
      expectProblem(await l.client.post("/api/v1/rooms", { name: "Mine" }), 403, "forbidden");
      expect((await teacher.client.post("/api/v1/rooms", { name: "Teacher's" })).status).toBe(201);
      expect((await admin.client.post("/api/v1/rooms", { name: "Admin's" })).status).toBe(201);
      // learners still join and use rooms
      const room = await createRoom(teacher.client);
      expect((await join(l.client, room.inviteCode as string)).myRole).toBe("member");
    } finally {
      const on = await admin.client.patch<AppSettings>("/api/v1/admin/settings", { learnersCreateRooms: true });
      expect(on.body).toMatchObject({ learnersCreateRooms: true });
    }
    expect((await l.client.post("/api/v1/rooms", { name: "Mine" })).status).toBe(201);

    const entries = await auditEntries({ action: "admin.settings_update" });
    expect(entries.length).toBe(2);
    expect(entries[1]).toMatchObject({
      actorId: admin.me.user.id,
      outcome: "success",
      details: { from: { learnersCreateRooms: true }, to: { learnersCreateRooms: false } },
    });
  });

  it("refuses unknown settings and wrong types", async () => {
    expectProblem(await admin.client.patch("/api/v1/admin/settings", { anything: true }), 400, "invalid_input");
    expectProblem(
      await admin.client.patch("/api/v1/admin/settings", { learnersCreateRooms: "no" }),
      400,
      "invalid_input",
    );
  });
});

describe("rooms: validation", () => {
  it("answers 400 problem+json for bad input", async () => {
    const c = teacher.client;
    const room = await createRoom(c);
    const base = `/api/v1/rooms/${room.id}`;
    const cases: [Promise<{ status: number; headers: Headers; body: unknown }>, string][] = [
      [c.get("/api/v1/rooms/not-a-uuid"), "param"],
      [c.get("/api/v1/rooms/not-a-uuid/members"), "param"],
      [c.patch(`${base}/members/not-a-uuid`, { role: "member" }), "param"],
      [c.post("/api/v1/rooms", { name: "x".repeat(81) }), "body.name"],
      [c.post("/api/v1/rooms", { name: "   " }), "body.name"],
      [c.post("/api/v1/rooms", { name: "Ok", color: "red" }), "body"],
      [c.post("/api/v1/rooms", { name: "Ok", language: "de" }), "body.language"],
      [c.patch(base, {}), "body"],
      [c.patch(base, { name: "Ok", ownerId: randomUUID() }), "body"],
      [c.patch(`${base}/members/${randomUUID()}`, { role: "owner" }), "body.role"],
      [c.post("/api/v1/rooms/join", { code: "NOT-A-CODE" }), "body.code"],
      [c.delete(`${base}/members/${randomUUID()}?ban=yes`), "query.ban"],
      [c.get(`${base}/messages?limit=1000`), "query.limit"],
      [c.get(`${base}/messages?before=0`), "query.before"],
      [c.get(`${base}/messages?cursor=1`), "query"],
    ];
    for (const [call, path] of cases) {
      const res = await call;
      expectProblem(res, 400, "invalid_input");
      const errors = (res.body as Problem).errors ?? [];
      expect(
        errors.some((e) => e.path.startsWith(path)),
        `${path}: ${JSON.stringify(errors)}`,
      ).toBe(true);
    }
  });

  it("routes /rooms/join to the join handler, never to /rooms/{id}", async () => {
    expectProblem(await teacher.client.get("/api/v1/rooms/join"), 400, "invalid_input");
    expectProblem(await teacher.client.post("/api/v1/rooms/join", {}), 400, "invalid_input");
  });
});
