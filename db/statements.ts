/**
 * Hot statements: sent straight to the driver with their parameters as arrays, prepared once per connection on
 * PostgreSQL. Query building costs more than these statements themselves on a busy chat node, and their text
 * never changes, so they skip drizzle.
 */

export interface NewMessageRow {
  roomId: string;
  authorId: string;
  body: string;
}

export interface InsertedMessageRow {
  /** position of the message in the batch */
  ord: number;
  id: number;
  seq: number;
  createdAt: Date;
}

export interface Statements {
  /** Inserts a batch of chat messages, numbered per room in batch order; a message whose room is gone is left out. */
  insertMessages(batch: readonly NewMessageRow[]): Promise<InsertedMessageRow[]>;
}

/** Runs a statement: `name` identifies it for a server-side prepared statement where the driver has them. */
export type RawQuery = (name: string, text: string, values: unknown[]) => Promise<Record<string, unknown>[]>;

export function createStatements(query: RawQuery): Statements {
  return {
    async insertMessages(batch) {
      const rows = await query(
        "dp_insert_messages",
        "select * from insert_messages($1::uuid[], $2::uuid[], $3::text[])",
        [batch.map((m) => m.roomId), batch.map((m) => m.authorId), batch.map((m) => m.body)],
      );
      return rows.map((r) => ({
        ord: Number(r.ord),
        id: Number(r.id),
        seq: Number(r.seq),
        createdAt: r.created_at instanceof Date ? r.created_at : new Date(String(r.created_at)),
      }));
    },
  };
}
