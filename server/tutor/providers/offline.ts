import type { CourseLanguage } from "../../../shared/schemas/course.ts";
import type { Course } from "../course.ts";
import type { PassageHit } from "../retrieval.ts";
import {
  estimatePromptTokens,
  estimateTokens,
  type GenerateRequest,
  type Provider,
  ProviderError,
  type StreamEvent,
} from "./types.ts";

export const OFFLINE_MODEL = "doctorpy-offline";

const T = {
  en: {
    label: "*Offline tutor: no AI model is connected, so this answer is put together from the DoctorPy course.*",
    nothing:
      "I could not find this in the course. Try other words (the name of the function or the error, for example), or ask your group.",
    example: "Example:",
    yourTurn: "Your turn:",
    read: "To read:",
    tryFirst:
      "Try it first: write a first version, run it, and ask again with your attempt. I will then give you a hint, one at a time.",
    hint: "Hint",
    hintColon: ":",
    noHintLeft:
      "You have had every hint of this exercise. Compare your code with the lesson's examples line by line, or ask your group to look at it with you.",
    debug:
      "Read the traceback from the bottom: the last line names the error, the line above it shows where it happened in your code. Which value is there, and what type is it?",
    review:
      "Read your code aloud line by line: does each name say what it holds? Is there a line you could not explain to the group?",
  },
  fr: {
    label:
      "*Tuteur hors ligne : aucun modèle d'IA n'est connecté, cette réponse est composée à partir du cours DoctorPy.*",
    nothing:
      "Je n'ai pas trouvé cela dans le cours. Essayez d'autres mots (le nom de la fonction ou de l'erreur, par exemple), ou demandez à votre groupe.",
    example: "Exemple :",
    yourTurn: "À vous :",
    read: "À lire :",
    tryFirst:
      "Essayez d'abord : écrivez une première version, exécutez-la, et reposez la question avec votre tentative. Je vous donnerai alors un indice, un à la fois.",
    hint: "Indice",
    hintColon: " :",
    noHintLeft:
      "Vous avez eu tous les indices de cet exercice. Comparez votre code aux exemples de la leçon ligne par ligne, ou demandez à votre groupe de le regarder avec vous.",
    debug:
      "Lisez la traceback depuis le bas : la dernière ligne nomme l'erreur, la ligne au-dessus montre où elle s'est produite dans votre code. Quelle valeur y a-t-il là, et de quel type ?",
    review:
      "Relisez votre code à voix haute, ligne par ligne : chaque nom dit-il ce qu'il contient ? Y a-t-il une ligne que vous ne sauriez pas expliquer au groupe ?",
  },
} satisfies Record<CourseLanguage, Record<string, string>>;

export interface OfflineOptions {
  /** pause between two streamed words (0: only yield to the event loop) */
  delayMs: number;
}

/**
 * The tutor that needs no model: it answers from the retrieved course passages, with an explanation, an
 * example, a question back to the learner and links to the lessons, clearly labelled as offline. On exercise
 * help it follows the same rule as the model's prompt: nothing before an attempt, then the next hint only.
 */
export class OfflineProvider implements Provider {
  readonly name = "offline";
  readonly defaultModel = OFFLINE_MODEL;

  constructor(
    private readonly course: Course,
    private readonly options: OfflineOptions = { delayMs: 0 },
  ) {}

  compose(request: GenerateRequest): string {
    const t = T[request.language];
    const parts = [t.label];
    if (request.kind === "exercise_help" && request.exercise) {
      const ex = request.exercise;
      if (ex.attempts.length === 0) parts.push(t.tryFirst);
      else if (ex.nextHint) parts.push(`**${t.hint} ${ex.hintsGiven.length + 1}${t.hintColon}** ${ex.nextHint}`);
      else parts.push(t.noHintLeft);
      parts.push(this.links(request.passages, request.language, [ex.lessonId]));
      return parts.join("\n\n");
    }
    const best = request.passages[0];
    if (!best) {
      parts.push(t.nothing);
      return parts.join("\n\n");
    }
    const lessonId = best.passage.lessonId;
    const fromLesson = request.passages.filter((h) => h.passage.lessonId === lessonId);
    const explanation =
      fromLesson.find((h) => h.passage.kind === "section") ??
      fromLesson.find((h) => h.passage.kind !== "example") ??
      best;
    parts.push(
      `### ${best.passage.lessonTitle} — ${explanation.passage.heading}`,
      firstParagraphs(explanation.passage.text, 900),
    );
    const lesson = this.course.byId.get(lessonId)?.[request.language];
    // The example that matched the question, or the lesson's first.
    const matched = fromLesson.find((h) => h.passage.kind === "example");
    const example = lesson?.examples.find((x) => matched && matched.passage.heading === x.title) ?? lesson?.examples[0];
    if (example) {
      parts.push(
        `**${t.example} ${example.title}**\n\n\`\`\`python\n${example.code.trimEnd()}\n\`\`\`\n\n${firstParagraphs(example.explanation, 400)}`,
      );
    }
    const back =
      request.kind === "debugging"
        ? t.debug
        : request.kind === "code_review"
          ? t.review
          : (lesson?.quiz[0]?.question ?? t.review);
    parts.push(`**${t.yourTurn}** ${back}`);
    parts.push(this.links(request.passages, request.language, []));
    return parts.join("\n\n");
  }

  async *stream(request: GenerateRequest, signal: AbortSignal): AsyncIterable<StreamEvent> {
    const text = this.compose(request);
    // Words with the space that follows them: the client sees the answer grow as it would from a model.
    for (const word of text.match(/\S+\s*/g) ?? []) {
      if (signal.aborted) throw new ProviderError("cancelled", "cancelled");
      await new Promise((resolve) =>
        this.options.delayMs > 0 ? setTimeout(resolve, this.options.delayMs) : setImmediate(resolve),
      );
      if (signal.aborted) throw new ProviderError("cancelled", "cancelled");
      yield { type: "delta", text: word };
    }
    yield {
      type: "done",
      model: OFFLINE_MODEL,
      usage: {
        promptTokens: estimatePromptTokens(request.messages),
        completionTokens: estimateTokens(text),
        estimated: true,
      },
    };
  }

  /** Links to the lessons behind the passages (then `also`), three at most, as the client routes them. */
  private links(passages: PassageHit[], language: CourseLanguage, also: string[]): string {
    const ids = [...new Set([...passages.map((p) => p.passage.lessonId), ...also])].slice(0, 3);
    const links = ids
      .map((id) => this.course.byId.get(id)?.[language])
      .filter((l) => l !== undefined)
      .map((l) => `[${l.title}](/lessons/${l.id})`);
    return links.length > 0 ? `**${T[language].read}** ${links.join(" · ")}` : "";
  }
}

/** The first paragraphs of a Markdown text up to about `max` characters, never cutting a code block. */
function firstParagraphs(text: string, max: number): string {
  // Paragraphs, with a fenced block that holds blank lines kept as one unit.
  const units: string[] = [];
  for (const block of text.split(/\n{2,}/)) {
    const last = units.at(-1);
    if (last !== undefined && (last.match(/```/g)?.length ?? 0) % 2 === 1)
      units[units.length - 1] = `${last}\n\n${block}`;
    else units.push(block);
  }
  const out: string[] = [];
  let size = 0;
  for (const unit of units) {
    if (out.length > 0 && size + unit.length > max) break;
    out.push(unit);
    size += unit.length;
  }
  // A paragraph that announces what was cut ("... like this:") would end the excerpt mid-thought.
  if (out.length > 1 && out.length < units.length && /:\s*$/.test(out.at(-1) as string)) out.pop();
  return out.join("\n\n").trim();
}
