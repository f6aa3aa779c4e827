import { sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";

export interface NewMessage {
  roomId: string;
  authorId: string;
  body: string;
}

export interface StoredMessage {
  id: number;
  seq: number;
  createdAt: Date;
}

interface Pending extends NewMessage {
  resolve: (m: StoredMessage) => void;
  reject: (err: unknown) => void;
}

type Row = { id: number | string; room_id: string; seq: number; ord: number; created_at: string | Date };

/**
 * Stores chat messages in batches: every message that arrives while a write is in flight goes into the next
 * statement, which numbers each room's messages gap-free (`rooms.last_seq` moves by the batch's count for that
 * room, in arrival order) and inserts them all. A batch is cut once per turn of the event loop: under light
 * load it holds one message, under heavy load many, and the per-statement cost (most of it, on the embedded
 * database) is shared. A failed batch is retried one message at
 * a time, so that one bad message cannot fail the others.
 */
export class MessageWriter {
  private queue: Pending[] = [];
  private writing = false;

  constructor(
    private readonly db: Db,
    private readonly maxBatch = 256,
  ) {}

  write(message: NewMessage): Promise<StoredMessage> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ...message, resolve, reject });
      if (!this.writing) {
        // Start after the current I/O phase: every message read from the sockets meanwhile joins the batch.
        // (The embedded database runs synchronously, so a write started at once would always be alone.)
        this.writing = true;
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        try {
          this.settle(batch, await this.insert(batch));
        } catch {
          for (const one of batch) {
            try {
              this.settle([one], await this.insert([one]));
            } catch (err) {
              one.reject(err);
            }
          }
        }
        // Let the sockets deliver what arrived during the write before the next batch is cut.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      this.writing = false;
    }
  }

  private settle(batch: Pending[], rows: Row[]): void {
    const byOrd = new Map(rows.map((r) => [Number(r.ord), r]));
    batch.forEach((p, ord) => {
      const row = byOrd.get(ord);
      if (!row) p.reject(new Error("the message was not stored (its room is gone)"));
      else p.resolve({ id: Number(row.id), seq: row.seq, createdAt: new Date(row.created_at) });
    });
  }

  private async insert(batch: Pending[]): Promise<Row[]> {
    const values = sql.join(
      batch.map((m, ord) => sql`(${m.roomId}::uuid, ${m.authorId}::uuid, ${m.body}::text, ${ord}::int)`),
      sql`, `,
    );
    const res = (await this.db.execute(sql`
      with input (room_id, author_id, body, ord) as (values ${values}),
      counts as (select room_id, count(*)::int as n from input group by room_id),
      bumped as (
        update rooms set last_seq = rooms.last_seq + counts.n from counts
        where rooms.id = counts.room_id returning rooms.id, rooms.last_seq
      ),
      numbered as (
        select input.*, bumped.last_seq - counts.n
          + row_number() over (partition by input.room_id order by input.ord) as seq
        from input join bumped on bumped.id = input.room_id join counts on counts.room_id = input.room_id
      ),
      inserted as (
        insert into messages (room_id, seq, author_id, body)
        select room_id, seq, author_id, body from numbered order by room_id, seq
        returning id, room_id, seq, created_at
      )
      select inserted.id, inserted.room_id, inserted.seq, inserted.created_at, numbered.ord
      from inserted join numbered on numbered.room_id = inserted.room_id and numbered.seq = inserted.seq`)) as unknown as {
      rows: Row[];
    };
    return res.rows;
  }
}
