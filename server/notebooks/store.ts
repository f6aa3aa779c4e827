import { and, asc, desc, eq, inArray } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { notebookStates, notebooks, notebookUpdates, notebookVersions } from "../../db/schema.ts";
import { notFound } from "../errors.ts";

export type NotebookRow = typeof notebooks.$inferSelect;
export type VersionRow = typeof notebookVersions.$inferSelect;

/** What a node needs to rebuild a document: the compacted state and every update logged after it. */
export interface StoredDocument {
  updates: Uint8Array[];
  /** how many logged updates (not yet compacted) it holds */
  logged: number;
}

/**
 * Notebooks in the database: one per room, created on first use; the append log of accepted Yjs updates and its
 * compaction; named versions.
 */
export class NotebookStore {
  constructor(private readonly db: Db) {}

  /** The room's notebook, created if it has none yet. */
  async forRoom(roomId: string): Promise<NotebookRow> {
    const [created] = await this.db.insert(notebooks).values({ roomId }).onConflictDoNothing().returning();
    if (created) return created;
    const [row] = await this.db.select().from(notebooks).where(eq(notebooks.roomId, roomId));
    if (!row) throw notFound("Notebook");
    return row;
  }

  async get(id: string): Promise<NotebookRow | undefined> {
    const [row] = await this.db.select().from(notebooks).where(eq(notebooks.id, id));
    return row;
  }

  async setLocked(id: string, locked: boolean): Promise<NotebookRow> {
    const [row] = await this.db.update(notebooks).set({ locked }).where(eq(notebooks.id, id)).returning();
    if (!row) throw notFound("Notebook");
    return row;
  }

  async load(id: string): Promise<StoredDocument> {
    const [state] = await this.db
      .select({ state: notebookStates.state })
      .from(notebookStates)
      .where(eq(notebookStates.notebookId, id));
    const logged = await this.db
      .select({ data: notebookUpdates.data })
      .from(notebookUpdates)
      .where(eq(notebookUpdates.notebookId, id))
      .orderBy(asc(notebookUpdates.id));
    const updates = logged.map((r) => r.data);
    return { updates: state ? [state.state, ...updates] : updates, logged: logged.length };
  }

  /** Appends accepted updates (of any notebooks) in one statement. */
  async append(rows: readonly { notebookId: string; data: Uint8Array }[]): Promise<void> {
    if (rows.length > 0) await this.db.insert(notebookUpdates).values([...rows]);
  }

  /**
   * Merges the compacted state and the logged updates into one new state (with `merge`, a worker thread), then
   * deletes exactly the updates it merged: one that another node logged meanwhile stays for the next
   * compaction. The merge runs outside any transaction; the write checks, under a row lock on the notebook,
   * that no other compaction replaced the state meanwhile (if one did, this one is dropped).
   * Returns the new state's size in bytes, or undefined when there was nothing to do or another node won.
   */
  async compact(id: string, merge: (updates: Uint8Array[]) => Promise<Uint8Array>): Promise<number | undefined> {
    const [state] = await this.db
      .select({ state: notebookStates.state, updatedAt: notebookStates.updatedAt })
      .from(notebookStates)
      .where(eq(notebookStates.notebookId, id));
    const logged = await this.db
      .select({ id: notebookUpdates.id, data: notebookUpdates.data })
      .from(notebookUpdates)
      .where(eq(notebookUpdates.notebookId, id))
      .orderBy(asc(notebookUpdates.id));
    if (logged.length === 0) return undefined;
    const merged = await merge([...(state ? [state.state] : []), ...logged.map((u) => u.data)]);
    return this.db.transaction(async (tx) => {
      await tx.select({ id: notebooks.id }).from(notebooks).where(eq(notebooks.id, id)).for("update");
      const [now] = await tx
        .select({ updatedAt: notebookStates.updatedAt })
        .from(notebookStates)
        .where(eq(notebookStates.notebookId, id));
      if (now?.updatedAt.getTime() !== state?.updatedAt.getTime()) return undefined;
      await tx
        .insert(notebookStates)
        .values({ notebookId: id, state: merged })
        .onConflictDoUpdate({ target: notebookStates.notebookId, set: { state: merged, updatedAt: new Date() } });
      const ids = logged.map((u) => u.id);
      for (let i = 0; i < ids.length; i += 1000)
        await tx.delete(notebookUpdates).where(inArray(notebookUpdates.id, ids.slice(i, i + 1000)));
      return merged.byteLength;
    });
  }

  async versions(notebookId: string): Promise<Omit<VersionRow, "state">[]> {
    return this.db
      .select({
        id: notebookVersions.id,
        notebookId: notebookVersions.notebookId,
        name: notebookVersions.name,
        createdBy: notebookVersions.createdBy,
        createdAt: notebookVersions.createdAt,
      })
      .from(notebookVersions)
      .where(eq(notebookVersions.notebookId, notebookId))
      .orderBy(desc(notebookVersions.createdAt));
  }

  async saveVersion(notebookId: string, name: string, state: Uint8Array, userId: string): Promise<VersionRow> {
    const [row] = await this.db
      .insert(notebookVersions)
      .values({ notebookId, name, state, createdBy: userId })
      .returning();
    return row as VersionRow;
  }

  async version(notebookId: string, versionId: string): Promise<VersionRow> {
    const [row] = await this.db
      .select()
      .from(notebookVersions)
      .where(and(eq(notebookVersions.notebookId, notebookId), eq(notebookVersions.id, versionId)));
    if (!row) throw notFound("Version");
    return row;
  }
}
