/**
 * What the members of one room saw of the tutor's answers in bench/tutor.ts: for every `tutor:delta` packet,
 * the delay from the model writing the token (the stamp in its text, see paced-model.ts) to this process
 * receiving it, and which pieces each member got (to count the lost and the duplicated ones). Reads the raw
 * packet bytes (`42["tutor:delta",{"roomId":…,"answerId":"…","seq":N,"text":"⟦stamp⟧ "}]`) without decoding
 * it into objects: with 500 members, tens of thousands of deliveries a second reach this process.
 */
import { readStamp, wallMs } from "./paced-model.ts";
import { Samples } from "./realtime.ts";

const ANSWER_ID = Buffer.from('"answerId":"');
const SEQ = Buffer.from('"seq":');
const UUID_LENGTH = 36;
/** pieces per answer a tally can tell apart (the benchmark's answers are shorter) */
export const MAX_SEQ = 4096;

/** One answer's deliveries. */
class Tally {
  /** delays (ms) of the members on the node that generated the answer, and of those on the other node */
  readonly near: number[] = [];
  readonly far: number[] = [];
  /** pieces received once, and again */
  unique = 0;
  duplicates = 0;
  /** malformed packets: no stamp, or a seq out of range */
  malformed = 0;
  private readonly seen: Uint8Array;

  constructor(private readonly members: number) {
    this.seen = new Uint8Array(members * MAX_SEQ);
  }

  add(member: number, seq: number, delay: number, near: boolean): void {
    if (!(seq >= 1 && seq < MAX_SEQ) || Number.isNaN(delay) || member >= this.members) {
      this.malformed++;
      return;
    }
    const at = member * MAX_SEQ + seq;
    if (this.seen[at]) {
      this.duplicates++;
      return;
    }
    this.seen[at] = 1;
    this.unique++;
    (near ? this.near : this.far).push(delay);
  }
}

export interface AnswerSummary {
  unique: number;
  duplicates: number;
  malformed: number;
  near: number[];
  far: number[];
}

export class DeltaRecorder {
  private readonly tallies = new Map<string, Tally>();
  /** the node that generates the answer being streamed (the asker's): its members' delays count as `near` */
  generatingNode = 0;

  /** `nodeOf(i)`: the node member `i` is connected to */
  constructor(
    private readonly members: number,
    private readonly nodeOf: (member: number) => number,
  ) {}

  /** Records one `tutor:delta` packet received by `member`, timed now. */
  receive(member: number, packet: Buffer): void {
    const now = wallMs();
    const idAt = packet.indexOf(ANSWER_ID);
    const seqAt = packet.indexOf(SEQ);
    if (idAt < 0 || seqAt < 0) return;
    const from = idAt + ANSWER_ID.length;
    const answerId = packet.toString("latin1", from, from + UUID_LENGTH);
    let tally = this.tallies.get(answerId);
    if (!tally) {
      tally = new Tally(this.members);
      this.tallies.set(answerId, tally);
    }
    let seq = 0;
    for (let k = seqAt + SEQ.length; k < packet.length; k++) {
      const c = packet[k] as number;
      if (c < 0x30 || c > 0x39) break;
      seq = seq * 10 + (c - 0x30);
    }
    tally.add(member, seq, now - readStamp(packet, seqAt), this.nodeOf(member) === this.generatingNode);
  }

  /** pieces of `answerId` received so far, each member's counted once */
  received(answerId: string): number {
    return this.tallies.get(answerId)?.unique ?? 0;
  }

  summary(answerId: string): AnswerSummary {
    const t = this.tallies.get(answerId);
    return t
      ? { unique: t.unique, duplicates: t.duplicates, malformed: t.malformed, near: t.near, far: t.far }
      : { unique: 0, duplicates: 0, malformed: 0, near: [], far: [] };
  }

  /** Answers other than `answerIds` that pieces arrived for (stray deliveries: there should be none). */
  others(answerIds: Iterable<string>): number {
    const known = new Set(answerIds);
    let n = 0;
    for (const [id, t] of this.tallies) if (!known.has(id)) n += t.unique + t.duplicates;
    return n;
  }
}

/** The delays of several answers as one set of samples. */
export function samplesOf(...delays: number[][]): Samples {
  const s = new Samples();
  for (const list of delays) for (const d of list) s.add(d);
  return s;
}
