import { and, eq, inArray, ne, sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { answerFeedback, answers, roomMembers, users } from "../../db/schema.ts";
import type { CourseLanguage } from "../../shared/schemas/course.ts";
import type { QuestionKind } from "../../shared/schemas/tutor.ts";
import { systemPrompt } from "./prompts.ts";

const EMAIL = /[\p{L}\p{N}._%+-]+@[\p{L}\p{N}.-]+\.[\p{L}]{2,}/gu;
const URL_WITH_USER = /\b[a-z][a-z0-9+.-]*:\/\/[^\s/@]+@[^\s]+/gi;
const PHONE = /(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(?\d{2,4}\)?[\s.-]?){2,5}\d{2,4}(?![\w.])/g;
const IPV4 = /\b(?:\d{1,3}\.){3}\d{1,3}\b/g;
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * Removes personal data from a text for export: e-mail addresses, URLs with credentials, phone numbers, IP
 * addresses, and the names given (the room's members), whole words, whatever their case.
 */
export function scrubPersonalData(text: string, names: string[]): string {
  let out = text
    .replace(URL_WITH_USER, "[url]")
    .replace(EMAIL, "[email]")
    .replace(IPV4, "[ip]")
    .replace(PHONE, (m) => (m.replace(/\D/g, "").length >= 8 ? "[phone]" : m));
  const words = [...new Set(names.flatMap((n) => [n, ...n.split(/\s+/)]).filter((n) => n.trim().length >= 3))].sort(
    (a, b) => b.length - a.length,
  );
  for (const name of words) {
    out = out.replace(new RegExp(`(?<![\\p{L}\\p{N}])${escapeRegExp(name)}(?![\\p{L}\\p{N}])`, "giu"), "[name]");
  }
  return out;
}

export interface ExportOptions {
  /** at least this many more thumbs up than down */
  minScore: number;
  includeOffline: boolean;
  /** most lines in one export */
  limit?: number;
}

/**
 * Well-rated answers as chat-format JSONL for fine-tuning (`{"messages":[system, user, assistant]}` per line),
 * personal data removed: each room's member names, and addresses, phone numbers and the like. Cached replays
 * are left out (they repeat an answer already exported).
 */
export async function fineTuningJsonl(db: Db, options: ExportOptions): Promise<{ jsonl: string; count: number }> {
  const score = sql<number>`sum(case when ${answerFeedback.rating} = 'up' then 1 else -1 end)::int`;
  const rows = await db
    .select({
      id: answers.id,
      roomId: answers.roomId,
      question: answers.question,
      text: answers.text,
      kind: answers.kind,
      language: answers.language,
      asker: users.displayName,
      score,
    })
    .from(answers)
    .innerJoin(users, eq(users.id, answers.askerId))
    .innerJoin(answerFeedback, eq(answerFeedback.answerId, answers.id))
    .where(
      and(
        eq(answers.status, "done"),
        eq(answers.cached, false),
        options.includeOffline ? undefined : ne(answers.provider, "offline"),
      ),
    )
    .groupBy(answers.id, users.displayName)
    .having(sql`${score} >= ${options.minScore}`)
    .orderBy(answers.createdAt)
    .limit(options.limit ?? 10_000);
  const roomIds = [...new Set(rows.map((r) => r.roomId))];
  const members =
    roomIds.length === 0
      ? []
      : await db
          .select({ roomId: roomMembers.roomId, name: users.displayName })
          .from(roomMembers)
          .innerJoin(users, eq(users.id, roomMembers.userId))
          .where(inArray(roomMembers.roomId, roomIds));
  const names = new Map<string, string[]>();
  for (const m of members) names.set(m.roomId, [...(names.get(m.roomId) ?? []), m.name]);
  const lines = rows.map((r) => {
    // the asker too, if they have left the room since
    const who = [r.asker, ...(names.get(r.roomId) ?? [])];
    return JSON.stringify({
      messages: [
        { role: "system", content: systemPrompt(r.kind as QuestionKind, r.language as CourseLanguage, "intermediate") },
        { role: "user", content: scrubPersonalData(r.question, who) },
        { role: "assistant", content: scrubPersonalData(r.text, who) },
      ],
    });
  });
  return { jsonl: lines.length > 0 ? `${lines.join("\n")}\n` : "", count: lines.length };
}
