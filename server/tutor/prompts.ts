import type { CourseLanguage } from "../../shared/schemas/course.ts";
import type { ChatTurn, QuestionKind } from "./providers/types.ts";
import { estimateTokens } from "./providers/types.ts";
import type { PassageHit } from "./retrieval.ts";

/** A learner's level, as the client reports it; it changes how much the tutor explains. */
export type LearnerLevel = "beginner" | "intermediate" | "advanced";

/** The exercise a learner asks about, with what they tried: the tutor gives hints in order, never the solution first. */
export interface ExerciseContext {
  lessonId: string;
  exerciseId: string;
  prompt: string;
  /** the learner's attempts so far (code), oldest first */
  attempts: string[];
  /** the hints already given, in order */
  hintsGiven: string[];
  /** the next hint of the lesson, if any is left */
  nextHint?: string | undefined;
}

export interface PromptInput {
  question: string;
  language: CourseLanguage;
  kind: QuestionKind;
  level: LearnerLevel;
  /** the room's recent conversation, oldest first */
  history: { author: string; text: string; tutor: boolean }[];
  passages: PassageHit[];
  /** a notebook cell the learner points at */
  cell?: string | undefined;
  exercise?: ExerciseContext | undefined;
  /** the budget for the whole prompt, in (estimated) tokens */
  maxPromptTokens: number;
}

const TRACEBACK =
  /traceback \(most recent call last\)|\b[A-Z][a-zA-Z]*(Error|Exception)\b|erreur|ne marche pas|doesn'?t work|bug/i;
const REVIEW =
  /\b(review|improve|better|cleaner|refactor|pythonic|relis|relire|amélior|mieux|propre|correct(e|ion)?\s*\?)/i;
const CODE = /```|^\s*(def|class|for|while|if|import|print)\b/m;

/** Routes a question to a kind: an exercise in context wins, then a traceback or error, then code to review. */
export function classifyQuestion(question: string, hasExercise: boolean): QuestionKind {
  if (hasExercise) return "exercise_help";
  if (TRACEBACK.test(question)) return "debugging";
  if (CODE.test(question) && REVIEW.test(question)) return "code_review";
  if (CODE.test(question)) return "debugging";
  return "concept";
}

const BASE: Record<CourseLanguage, string> = {
  en:
    "You are DoctorPy, a patient Python tutor for a study group. You tutor; you do not do the work. " +
    "Ask a guiding question before you explain, give hints before answers, and explain at the learner's level " +
    "with short examples. Review code rather than rewrite it: point at the line and ask what it does. " +
    "Cite the course lessons you used as [lesson-id]. Answer in English, in Markdown, briefly.",
  fr:
    "Tu es DoctorPy, un tuteur Python patient pour un groupe d'étude. Tu accompagnes, tu ne fais pas le travail " +
    "à la place de l'apprenant. Pose une question qui guide avant d'expliquer, donne des indices avant les " +
    "réponses, explique au niveau de l'apprenant avec de courts exemples. Commente le code plutôt que de le " +
    "réécrire : montre la ligne et demande ce qu'elle fait. Cite les leçons du cours utilisées sous la forme " +
    "[id-de-leçon]. Réponds en français, en Markdown, brièvement.",
};

const BY_KIND: Record<QuestionKind, Record<CourseLanguage, string>> = {
  concept: {
    en: "The learner asks about a concept: explain it simply, show one small example, then ask a question that checks understanding.",
    fr: "L'apprenant demande un concept : explique-le simplement, montre un petit exemple, puis pose une question qui vérifie la compréhension.",
  },
  debugging: {
    en: "The learner has an error: help them read the traceback from the bottom, name the likely cause, and ask them to try the fix themselves. Do not paste a corrected program.",
    fr: "L'apprenant a une erreur : aide-le à lire la traceback depuis le bas, nomme la cause probable et demande-lui d'essayer la correction lui-même. Ne colle pas un programme corrigé.",
  },
  code_review: {
    en: "The learner wants a review: point out at most three things (correctness first, then clarity and PEP 8), each with the line it concerns and a question. Do not rewrite the code.",
    fr: "L'apprenant veut une relecture : signale au plus trois points (justesse d'abord, puis clarté et PEP 8), chacun avec la ligne concernée et une question. Ne réécris pas le code.",
  },
  exercise_help: {
    en: "The learner is working on an exercise. Never give the full solution. If they have not tried yet, ask them to try and explain their plan. Otherwise give only the next hint below, in your words, and comment on their attempt.",
    fr: "L'apprenant travaille sur un exercice. Ne donne jamais la solution complète. S'il n'a pas encore essayé, demande-lui d'essayer et d'expliquer son plan. Sinon donne seulement l'indice suivant ci-dessous, avec tes mots, et commente sa tentative.",
  },
};

const LEVEL: Record<LearnerLevel, Record<CourseLanguage, string>> = {
  beginner: { en: "Learner level: beginner (no jargon).", fr: "Niveau : débutant (pas de jargon)." },
  intermediate: { en: "Learner level: intermediate.", fr: "Niveau : intermédiaire." },
  advanced: { en: "Learner level: advanced (be concise).", fr: "Niveau : avancé (sois concis)." },
};

/** The system prompt for a kind of question, in the learner's language (exported for tests and experiments). */
export function systemPrompt(kind: QuestionKind, language: CourseLanguage, level: LearnerLevel): string {
  return `${BASE[language]}\n${BY_KIND[kind][language]}\n${LEVEL[level][language]}`;
}

/**
 * The messages sent to a model, within `maxPromptTokens`: the system prompt, the course passages (best first),
 * the exercise and the cell, the recent conversation (newest kept), then the question. What does not fit is
 * dropped in this order: older conversation, weaker passages; the question itself is cut last.
 */
export function buildMessages(input: PromptInput): ChatTurn[] {
  const { language } = input;
  const system = systemPrompt(input.kind, language, input.level);
  let budget = input.maxPromptTokens - estimateTokens(system);
  const question = clip(input.question, Math.max(64, Math.floor(budget / 2)));
  budget -= estimateTokens(question);

  const context: string[] = [];
  if (input.exercise) {
    const ex = input.exercise;
    const lines = [
      `${language === "fr" ? "Exercice" : "Exercise"} [${ex.lessonId}/${ex.exerciseId}]: ${ex.prompt}`,
      ex.attempts.length === 0
        ? language === "fr"
          ? "L'apprenant n'a pas encore essayé."
          : "The learner has not tried yet."
        : `${language === "fr" ? "Dernière tentative" : "Latest attempt"}:\n\`\`\`python\n${ex.attempts.at(-1)}\n\`\`\``,
    ];
    if (ex.attempts.length > 0 && ex.nextHint)
      lines.push(`${language === "fr" ? "Indice suivant" : "Next hint"}: ${ex.nextHint}`);
    context.push(clip(lines.join("\n"), Math.floor(budget / 3)));
  }
  if (input.cell)
    context.push(
      clip(`${language === "fr" ? "Cellule" : "Cell"}:\n\`\`\`python\n${input.cell}\n\`\`\``, Math.floor(budget / 4)),
    );
  for (const c of context) budget -= estimateTokens(c);

  const passages: string[] = [];
  for (const hit of input.passages) {
    const p = `[${hit.passage.lessonId}] ${hit.passage.lessonTitle} — ${hit.passage.heading}\n${hit.passage.text}`;
    if (estimateTokens(p) > budget * 0.6) continue;
    passages.push(p);
    budget -= estimateTokens(p);
  }

  const history: ChatTurn[] = [];
  for (const turn of [...input.history].reverse()) {
    const content = turn.tutor ? turn.text : `${turn.author}: ${turn.text}`;
    if (estimateTokens(content) > budget) break;
    history.unshift({ role: turn.tutor ? "assistant" : "user", content });
    budget -= estimateTokens(content);
  }

  const course =
    passages.length > 0
      ? `\n\n${language === "fr" ? "Extraits du cours" : "Course passages"}:\n${passages.join("\n\n")}`
      : "";
  return [
    { role: "system", content: `${system}${course}${context.length > 0 ? `\n\n${context.join("\n\n")}` : ""}` },
    ...history,
    { role: "user", content: question },
  ];
}

function clip(text: string, maxTokens: number): string {
  const max = Math.max(16, maxTokens) * 4;
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
