import type { InsertedMessageRow, NewMessageRow, Statements } from "../../db/statements.ts";

export type NewMessage = NewMessageRow;

export interface StoredMessage {
  id: number;
  seq: number;
  createdAt: Date;
}

interface Pending extends NewMessage {
  resolve: (m: StoredMessage) => void;
  reject: (err: unknown) => void;
}

/**
 * Stores chat messages in batches: every message that arrives while a write is in flight goes into the next
 * call of `insert_messages`, which numbers each room's messages gap-free (`rooms.last_seq` moves by the batch's
 * count for that room, in arrival order) and inserts them all. A batch is cut once per turn of the event loop:
 * under light load it holds one message, under heavy load many, and the per-statement cost (most of it, on the
 * embedded database) is shared. A failed batch is retried one message at a time, so that one bad message
 * cannot fail the others.
 */
export class MessageWriter {
  private queue: Pending[] = [];
  private writing = false;

  constructor(
    private readonly statements: Statements,
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
          this.settle(batch, await this.statements.insertMessages(batch));
        } catch {
          for (const one of batch) {
            try {
              this.settle([one], await this.statements.insertMessages([one]));
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

  private settle(batch: Pending[], rows: InsertedMessageRow[]): void {
    const byOrd = new Map(rows.map((r) => [r.ord, r]));
    batch.forEach((p, ord) => {
      const row = byOrd.get(ord);
      if (!row) p.reject(new Error("the message was not stored (its room is gone)"));
      else p.resolve({ id: row.id, seq: row.seq, createdAt: row.createdAt });
    });
  }
}
