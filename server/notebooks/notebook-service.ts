import * as Y from "yjs";
import type { Ipynb } from "../../shared/notebook/ipynb.ts";
import { exportIpynb, importIpynb } from "../../shared/notebook/ipynb.ts";
import { readNotebook, replaceCells } from "../../shared/notebook/model.ts";
import type { Invalidation, InvalidationBus } from "../auth/session-cache.ts";
import type { Deps } from "../deps.ts";
import { forbidden, notFound } from "../errors.ts";
import { isManager, type RoomService, type Standing } from "../rooms/rooms.ts";
import type { Access } from "./connection.ts";
import type { LiveNotebook, NotebookHub } from "./hub.ts";
import type { NotebookRow, NotebookStore, VersionRow } from "./store.ts";

export interface NotebookInfo {
  id: string;
  roomId: string;
  locked: boolean;
  /** whether I may edit it now (members, not observers; only managers while it is locked or the room ended) */
  writable: boolean;
  /** whether I may lock it and save or restore versions */
  canManage: boolean;
}

export type VersionInfo = { id: string; name: string; createdBy: string | null; createdAt: string };

/**
 * Who may do what with a room's notebook: members and managers write, observers read; a locked notebook is
 * read-only for everyone but owners and moderators, and so is the notebook of an ended session. `null`: not a
 * member (or the room is archived), which the caller answers like a notebook that does not exist.
 */
export async function notebookAccess(
  deps: Pick<Deps, "rooms">,
  row: NotebookRow,
  userId: string,
): Promise<(Access & { manager: boolean }) | null> {
  let standing: Standing;
  try {
    standing = await deps.rooms.cachedStanding(row.roomId, userId);
  } catch {
    return null;
  }
  return accessOf(standing, row);
}

/** `notebookAccess` from a standing already read. */
function accessOf({ room, member }: Standing, row: NotebookRow): (Access & { manager: boolean }) | null {
  if (room.archivedAt) return null;
  const manager = isManager(member.role);
  const writable = manager ? !room.endedAt : member.role !== "observer" && !room.endedAt && !row.locked;
  return { writable, manager };
}

const toVersion = (v: Omit<VersionRow, "state">): VersionInfo => ({
  id: v.id,
  name: v.name,
  createdBy: v.createdBy,
  createdAt: v.createdAt.toISOString(),
});

/** A room's notebook over HTTP: its state, the lock, `.ipynb` import and export, named versions. */
export class NotebookService {
  constructor(
    readonly store: NotebookStore,
    readonly hub: NotebookHub,
    private readonly rooms: RoomService,
    private readonly bus: InvalidationBus,
  ) {}

  /** The room's notebook (created on first use) and what I may do with it; 404 for non-members. */
  private async resolve(roomId: string, userId: string) {
    // The standing is read once; the notebook is only created for a member.
    const standing = await this.rooms.standing(roomId, userId);
    if (standing.room.archivedAt) throw notFound("Room");
    const row = await this.store.forRoom(roomId);
    return { row, access: accessOf(standing, row) as Access & { manager: boolean } };
  }

  private info(row: NotebookRow, access: Access & { manager: boolean }): NotebookInfo {
    return { id: row.id, roomId: row.roomId, locked: row.locked, writable: access.writable, canManage: access.manager };
  }

  async get(roomId: string, userId: string): Promise<NotebookInfo> {
    const { row, access } = await this.resolve(roomId, userId);
    return this.info(row, access);
  }

  private async managed(roomId: string, userId: string) {
    const { row, access } = await this.resolve(roomId, userId);
    if (!access.manager) throw forbidden("Only owners and moderators can do this");
    return { row };
  }

  /** Locks or unlocks; open connections on every node follow (through the room's invalidation). */
  async setLocked(roomId: string, userId: string, locked: boolean): Promise<NotebookInfo> {
    const { row } = await this.managed(roomId, userId);
    const updated = await this.store.setLocked(row.id, locked);
    this.bus.publish({ kind: "room", id: roomId } satisfies Invalidation);
    const access = await notebookAccess({ rooms: this.rooms }, updated, userId);
    return this.info(updated, access ?? { writable: false, manager: true });
  }

  async exportIpynb(roomId: string, userId: string): Promise<unknown> {
    const { row } = await this.resolve(roomId, userId);
    return this.read(row, (doc) => exportIpynb(doc));
  }

  /** Replaces the notebook's cells with the file's, as one new edit that connected clients follow. */
  async importIpynb(roomId: string, userId: string, nb: Ipynb): Promise<NotebookInfo> {
    const { row, access } = await this.resolve(roomId, userId);
    if (!access.writable) throw forbidden("The notebook is read-only for you");
    await this.change(row, (doc) => importIpynb(doc, nb));
    return this.info(row, access);
  }

  async versions(roomId: string, userId: string): Promise<VersionInfo[]> {
    const { row } = await this.resolve(roomId, userId);
    return (await this.store.versions(row.id)).map(toVersion);
  }

  async saveVersion(roomId: string, userId: string, name: string): Promise<VersionInfo> {
    const { row } = await this.managed(roomId, userId);
    const state = await this.read(row, (doc) => Y.encodeStateAsUpdate(doc));
    return toVersion(await this.store.saveVersion(row.id, name, state, userId));
  }

  /** Makes the live notebook hold the version's cells, as a new edit (history is not rewritten). */
  async restoreVersion(roomId: string, userId: string, versionId: string): Promise<VersionInfo> {
    const { row } = await this.managed(roomId, userId);
    const version = await this.store.version(row.id, versionId);
    const saved = new Y.Doc();
    try {
      Y.applyUpdate(saved, version.state);
      const cells = readNotebook(saved);
      await this.change(row, (doc) => replaceCells(doc, cells));
    } finally {
      saved.destroy();
    }
    return toVersion(version);
  }

  /** Reads the notebook: the live document when it is open here, else the stored one. */
  private async read<T>(row: NotebookRow, fn: (doc: Y.Doc) => T): Promise<T> {
    const live = this.hub.get(row.id);
    if (live) return fn(live.doc);
    const doc = new Y.Doc();
    try {
      for (const u of (await this.store.load(row.id)).updates) Y.applyUpdate(doc, u);
      return fn(doc);
    } finally {
      doc.destroy();
    }
  }

  private async change(row: NotebookRow, fn: (doc: Y.Doc) => void): Promise<void> {
    const live: LiveNotebook = await this.hub.open(row);
    this.hub.edit(live, fn);
    this.hub.release(live);
    await this.hub.flushed(live);
  }
}
