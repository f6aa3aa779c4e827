import MiniSearch, { type SearchResult } from "minisearch";
import type { CourseLanguage, Lesson } from "../../shared/schemas/course.ts";
import type { Course } from "./course.ts";

/** A piece of one lesson small enough to quote to the tutor model, in one language. */
export interface Passage {
  id: string;
  lessonId: string;
  lessonTitle: string;
  order: number;
  language: CourseLanguage;
  kind: "summary" | "section" | "example" | "exercise";
  heading: string;
  text: string;
}

/** A passage with its relevance to a query (higher is better; only comparable within one query). */
export interface PassageHit {
  passage: Passage;
  score: number;
}

/** A lesson with its aggregated relevance and the passages that earned it, best first. */
export interface LessonHit {
  lessonId: string;
  title: string;
  score: number;
  passages: PassageHit[];
}

/**
 * Cuts the course into passages: per lesson and language, a summary (title, summary and keywords), one per
 * section, one per example (title, code, explanation) and one per exercise with its title and prompt only.
 * Solutions, tests, starters and hints are left out on purpose: whatever is retrieved may be shown to the
 * learner, and the tutor must not leak answers.
 */
export function chunkCourse(course: Course): Passage[] {
  return (["en", "fr"] as const).flatMap((language) => course.lessons[language].flatMap(chunkLesson));
}

function chunkLesson(lesson: Lesson): Passage[] {
  const base = { lessonId: lesson.id, lessonTitle: lesson.title, order: lesson.order, language: lesson.language };
  const id = (suffix: string) => `${lesson.language}/${lesson.id}#${suffix}`;
  return [
    {
      ...base,
      id: id("summary"),
      kind: "summary",
      heading: lesson.title,
      text: `${lesson.summary.trim()}\n\n${KEYWORDS_LABEL[lesson.language]}: ${lesson.keywords.join(", ")}`,
    },
    ...lesson.sections.map(
      (s, i): Passage => ({
        ...base,
        id: id(`section-${i + 1}`),
        kind: "section",
        heading: s.heading,
        text: s.body.trim(),
      }),
    ),
    ...lesson.examples.map(
      (e, i): Passage => ({
        ...base,
        id: id(`example-${i + 1}`),
        kind: "example",
        heading: e.title,
        text: `\`\`\`python\n${e.code}\`\`\`\n\n${e.explanation.trim()}`,
      }),
    ),
    ...lesson.exercises.map(
      (e): Passage => ({
        ...base,
        id: id(`exercise-${e.id}`),
        kind: "exercise",
        heading: e.title,
        text: e.prompt.trim(),
      }),
    ),
  ];
}

const KEYWORDS_LABEL: Record<CourseLanguage, string> = { en: "Keywords", fr: "Mots-clés" };

// Function words carry no topic. Python keywords that are also English words (if, for, while, not, with,
// from, return, else, try, none...) are kept on purpose: "for loop" or "with open" name a lesson. Only the
// few that fill every English sentence (in, is, and, or, as) are dropped, unless called like a function
// (any(), all()). French "si" (if) and "sans" are dropped too: French prose is full of them, and code says
// `if`. Lists are accent-folded.
const STOP: Record<CourseLanguage, Set<string>> = {
  en: new Set(
    `a about after again all also am an and any are aren as at be because been before being between both but by
    can cannot could couldn did didn do does doesn doing don done each even ever every few had has hasn have
    haven having he her here hers him his how however i id ie im in into is isn it its itself ive just let lets ll
    me mine more most much my myself need needs no nor of off often on once one only or other our ours out own
    please re really s same shall she should so some something still such than thank thanks that thats the their
    t them then there these they thing things this those though through to too us ve very want wanna was wasn way
    we were weren what whats when where whether which who whom whose why will won would wouldn yet you your
    yours yourself`.split(/\s+/),
  ),
  fr: new Set(
    `a ai aie aient ainsi alors as au aucun aussi autre aux avais avait avec avez avoir avons c ca car ce ceci
    cela celle celui ces cet cette chaque chez comme comment d dans de des deja dois doit donc dont du elle elles
    en encore es est et etc ete etre eu eux faire fais fait faut fois ici il ils j je jusqu l la le les leur
    leurs lorsqu lui m ma mais me meme mes moi mon n ne ni nos notre nous on ont ou oui par parce pas peu peut
    peux plutot pour pourquoi puis qu quand que quel quelle quelles quels qui quoi s sa sans se ses si soit
    son sont suis sur t ta te tes toi ton toujours tous tout toute toutes tres tu un une veux voici voila vos
    votre vous y`.split(/\s+/),
  ),
};

/** Lower-cases and strips diacritics, so that "clé", "Clé" and "cle" are the same word. */
function fold(text: string): string {
  return text.normalize("NFKD").replace(/\p{M}/gu, "").toLowerCase().replace(/œ/g, "oe").replace(/æ/g, "ae");
}

// Light suffix stripping: plurals and the commonest inflections, so "dictionaries"/"dictionary" and
// "listes"/"liste" meet. Aggressive stemmers conflate too much in a small technical vocabulary.
function stem(word: string, language: CourseLanguage): string {
  if (!/^[a-z]+$/.test(word) || word.length <= 3) return word;
  let w = word;
  if (language === "en") {
    if (w.endsWith("ies") && w.length > 4) w = `${w.slice(0, -3)}y`;
    else if (/[^su]s$/.test(w) && !w.endsWith("is")) w = w.slice(0, -1);
    if (/(ing|ed)$/.test(w)) {
      const cut = w.replace(/(ing|ed)$/, "");
      if (cut.length >= 3 && /[aeiouy]/.test(cut)) w = /([b-df-hj-np-tv-z])\1$/.test(cut) ? cut.slice(0, -1) : cut;
    }
    if (/[^aeiou]y$/.test(w)) w = `${w.slice(0, -1)}i`;
  } else {
    if (w.endsWith("aux")) w = `${w.slice(0, -3)}al`;
    else if (/[sx]$/.test(w)) w = w.slice(0, -1);
    const cut = w.replace(/(ee|er|ez|e)$/, "");
    if (cut.length >= 3) w = cut;
  }
  if (w.endsWith("e") && w.length > 3) w = w.slice(0, -1);
  return w;
}

// Words, identifiers, hyphenated compounds (f-string, utf-8), and the operators learners ask about.
const TOKEN = /[\p{L}\p{N}_]+(?:-[\p{L}\p{N}_]+)*|\/\/|\*\*|[=!<>+\-*/%]=|->|%/gu;

/**
 * Turns text into index terms for one language: lower-case, accent-folded, stop words dropped, stemmed.
 * Identifiers also yield their parts, so `KeyError` gives keyerror, key and error and `word_count` gives
 * word_count, word and count; compounds also yield their joined form (f-string → fstring), as does a lone letter or a
 * word before a small number ("f string" → fstring, "pep 8" → pep8), which is how learners spell them.
 */
export function analyze(text: string, language: CourseLanguage): string[] {
  const out: string[] = [];
  const matches = [...text.replace(/['’]/g, " ").matchAll(TOKEN)];
  matches.forEach((m, i) => {
    const raw = m[0];
    const next = matches[i + 1]?.[0];
    const joined =
      next &&
      ((/^\p{L}$/u.test(raw) && !STOP[language].has(fold(raw)) && /^\p{L}{2,}$/u.test(next)) ||
        (/^\p{L}{2,}$/u.test(raw) && /^\d{1,2}$/.test(next)));
    if (joined) out.push(stem(fold(raw + next), language));
    // A word called like a function is code, not prose: any() and all() are not the stop words any and all.
    out.push(...termsOf(raw, language, text[m.index + raw.length] === "("));
  });
  return out;
}

// The course has a few thousand distinct tokens: caching each one's terms makes indexing several times faster.
// Learners' queries add new ones, so the cache is emptied when it grows large.
const CACHE: Record<CourseLanguage, Map<string, string[]>> = { en: new Map(), fr: new Map() };

function termsOf(raw: string, language: CourseLanguage, call: boolean): string[] {
  const cache = CACHE[language];
  const key = call ? `${raw}(` : raw;
  let terms = cache.get(key);
  if (terms) return terms;
  if (cache.size > 50_000) cache.clear();
  terms = [];
  cache.set(key, terms);
  if (!/[\p{L}\p{N}_]/u.test(raw)) {
    terms.push(raw); // an operator
    return terms;
  }
  const stop = call ? new Set<string>() : STOP[language];
  const push = (piece: string) => {
    const w = fold(piece);
    if (w.length >= 2 && !stop.has(w) && !(/^\d+$/.test(w) && w.length < 3)) terms.push(stem(w, language));
  };
  const parts = raw.split("-");
  if (parts.length > 1) push(parts.join(""));
  for (const part of parts) {
    const word = part.replace(/^_+|_+$/g, "");
    if (word !== part && word) terms.push(fold(part)); // a dunder: __init__ is itself a term too
    push(word);
    const pieces = word.split("_").flatMap((p) => p.match(/\p{Lu}+(?!\p{Ll})|\p{Lu}?\p{Ll}+|\p{N}+/gu) ?? []);
    if (pieces.length > 1) for (const piece of pieces) push(piece);
    // Learners type "keyerror" or "typeerror" in lower case: exception names still end in Error, Exception, Warning.
    const exception = /^([a-z]{2,})(error|exception|warning)$/.exec(word);
    if (pieces.length === 1 && exception) for (const piece of exception.slice(1)) push(piece as string);
  }
  return terms;
}

// A traceback's frame lines (`File "x.py", line 3, in <module>`) and its header name files, modules and calls
// in every error; only the last line, the error itself, says what went wrong.
function cleanQuery(query: string): string {
  return query
    .replace(/Traceback \(most recent call last\):?/gi, " traceback ")
    .replace(/File "[^"\n]*", line \d+(?:, in [<\w>.]+)?/g, " ")
    .replace(/^\s*\^+\s*$/gm, " ");
}

const BOOST = { keywords: 3, heading: 2, text: 1 };

interface Doc {
  id: string;
  heading: string;
  keywords: string;
  text: string;
}

/** The course's passages indexed for search, one MiniSearch index per language. */
export class CourseIndex {
  private constructor(
    private readonly indexes: Record<CourseLanguage, MiniSearch<Doc>>,
    private readonly byId: Map<string, Passage>,
  ) {}

  /** Chunks the course and indexes every passage under its language's text processing. */
  static build(course: Course): CourseIndex {
    const byId = new Map<string, Passage>();
    const make = (language: CourseLanguage) => {
      const index = new MiniSearch<Doc>({
        fields: ["heading", "keywords", "text"],
        tokenize: (text) => analyze(text, language),
        processTerm: (term) => term,
      });
      for (const lesson of course.lessons[language]) {
        for (const p of chunkLesson(lesson)) {
          byId.set(p.id, p);
          // The keywords get their own boosted field; the summary's text then holds only the summary.
          const isSummary = p.kind === "summary";
          index.add({
            id: p.id,
            heading: p.heading,
            keywords: isSummary ? lesson.keywords.join("\n") : "",
            text: isSummary ? lesson.summary : p.text,
          });
        }
      }
      return index;
    };
    return new CourseIndex({ en: make("en"), fr: make("fr") }, byId);
  }

  /** The passages of `language` that best match `query`, best first. */
  passages(query: string, language: CourseLanguage, limit = 10): PassageHit[] {
    return this.search(query, language).slice(0, limit);
  }

  /**
   * The lessons that best match `query`, best first. A lesson scores its best passage plus a decaying share
   * of its next ones: a lesson that covers the question in several places beats one lucky sentence, but ten
   * weak matches do not beat one strong one.
   */
  lessons(query: string, language: CourseLanguage, limit = 3): LessonHit[] {
    return groupByLesson(this.search(query, language), limit);
  }

  private search(query: string, language: CourseLanguage): PassageHit[] {
    const terms = [...new Set(analyze(cleanQuery(query), language))];
    if (terms.length === 0) return [];
    const results: SearchResult[] = this.indexes[language].search(terms.join(" "), {
      tokenize: (s) => s.split(" "),
      processTerm: (t) => t,
      boost: BOOST,
      // Prefix search lets "iter" reach iterator and iterable; it is pointless on very short words.
      prefix: (t) => t.length >= 4 && /^[a-z]/.test(t),
      // One typo in a word of five letters or more ("exeption"), two from seven (a swap: "fonctoin"). Shorter
      // words have too many neighbours: "list" is one edit from "lost" and "last".
      fuzzy: (t) => (/^[a-z]+$/.test(t) ? (t.length >= 7 ? 2 : t.length >= 5 ? 1 : false) : false),
    });
    return results.map((r) => ({ passage: this.byId.get(r.id as string) as Passage, score: r.score }));
  }
}

const LESSON_DECAY = 0.5;

/**
 * Groups a passage ranking (best first) by lesson, best lesson first: a lesson scores its best passage plus a
 * decaying share of its next three, and keeps its first three passages. This is how `CourseIndex.lessons` ranks
 * lessons; any other passage ranking can be grouped the same way.
 */
export function groupByLesson(hits: PassageHit[], limit = 3): LessonHit[] {
  const grouped = new Map<string, PassageHit[]>();
  for (const hit of hits) {
    const list = grouped.get(hit.passage.lessonId) ?? [];
    list.push(hit);
    grouped.set(hit.passage.lessonId, list);
  }
  return [...grouped.values()]
    .map((group): LessonHit => {
      const first = group[0] as PassageHit;
      const score = group.slice(0, 4).reduce((sum, h, i) => sum + h.score * LESSON_DECAY ** i, 0);
      return {
        lessonId: first.passage.lessonId,
        title: first.passage.lessonTitle,
        score,
        passages: group.slice(0, 3),
      };
    })
    .sort((a, b) => b.score - a.score)
    .slice(0, limit);
}

const FRENCH_HINTS = new Set(
  `le la les des du un une est et je que qui pour dans avec pas comment pourquoi mon ma mes ce cette quand sur
  ne il elle nous vous au aux ou mais quoi faire fait sont dois veux peux faut`.split(/\s+/),
);
const ENGLISH_HINTS = new Set(
  `the an is are and i my how why what when to of it this that does do can you your with should would get use
  which there their want need from`.split(/\s+/),
);

/**
 * Guesses whether a learner wrote in French or English from function words and accented letters. Code and
 * tracebacks are English whatever the learner speaks, so accents weigh double and ties go to French.
 * Defaults to "en" when nothing decides.
 */
export function detectLanguage(text: string, fallback: CourseLanguage = "en"): CourseLanguage {
  const prose = cleanQuery(text).replace(/`[^`]*`/g, " ");
  let fr = (prose.match(/[éèêàùçœâîôû]/gi) ?? []).length * 2;
  let en = 0;
  for (const word of prose.toLowerCase().split(/[^\p{L}]+/u)) {
    if (FRENCH_HINTS.has(word)) fr += 1;
    if (ENGLISH_HINTS.has(word)) en += 1;
  }
  if (fr === 0 && en === 0) return fallback;
  // A tie with some French in it goes to French: pasted code and error messages inflate the English count.
  return fr > 0 && fr >= en ? "fr" : "en";
}
