import { createSubscriber } from "svelte/reactivity";
import { en, type MessageKey, type Messages } from "./messages/en.ts";
import { fr } from "./messages/fr.ts";

export type { MessageKey } from "./messages/en.ts";

export const LOCALES = ["en", "fr"] as const;
export type Locale = (typeof LOCALES)[number];
/** Each language is named in itself, so that anyone can find theirs. */
export const LOCALE_NAMES: Record<Locale, string> = { en: "English", fr: "Français" };

export type Vars = Record<string, string | number>;
/** A message to show later: translated at render time so that it follows language switches. */
export interface Msg {
  key: MessageKey;
  vars?: Vars;
}

const DICTIONARIES: Record<Locale, Messages> = { en, fr };
const STORAGE_KEY = "doctorpy.locale";

function isLocale(value: unknown): value is Locale {
  return typeof value === "string" && (LOCALES as readonly string[]).includes(value);
}

/** The saved choice first, then the browser's preferred languages, then English. */
export function detectLocale(): Locale {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (isLocale(saved)) return saved;
  } catch {
    // storage can be disabled; fall through to the browser languages
  }
  const preferred = navigator.languages.length > 0 ? navigator.languages : [navigator.language];
  for (const tag of preferred) {
    const base = tag.toLowerCase().split("-")[0];
    if (isLocale(base)) return base;
  }
  return "en";
}

let current: Locale = detectLocale();
let notify: (() => void) | undefined;
// Lets components and $derived values re-run when the language changes, without a rune module.
const track = createSubscriber((update) => {
  notify = update;
  return () => {
    notify = undefined;
  };
});

function applyToDocument(locale: Locale): void {
  document.documentElement.lang = locale;
}
applyToDocument(current);

export function getLocale(): Locale {
  track();
  return current;
}

export function setLocale(locale: Locale): void {
  if (locale === current) return;
  current = locale;
  try {
    localStorage.setItem(STORAGE_KEY, locale);
  } catch {
    // not persisted; the choice still holds for this page
  }
  applyToDocument(locale);
  notify?.();
}

export function interpolate(template: string, vars?: Vars): string {
  if (!vars) return template;
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const value = vars[name];
    return value === undefined ? whole : String(value);
  });
}

/** Translate `key` in the current language. */
export function t(key: MessageKey, vars?: Vars): string {
  track();
  return interpolate(DICTIONARIES[current][key], vars);
}

export function tm(msg: Msg): string {
  return t(msg.key, msg.vars);
}

function hasKey(key: string): key is MessageKey {
  return Object.hasOwn(en, key);
}

/** The translated text for an error code, falling back to a generic message for unknown codes. */
export function errorText(code: string): string {
  const key = `error.${code}`;
  return t(hasKey(key) ? key : "error.unknown");
}

/** Date and time in the current language, e.g. "24 nov. 2025, 14:03". */
export function formatDateTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return new Intl.DateTimeFormat(getLocale(), { dateStyle: "medium", timeStyle: "short" }).format(date);
}

export function formatDate(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return new Intl.DateTimeFormat(getLocale(), { dateStyle: "long" }).format(date);
}

export function formatNumber(value: number): string {
  return new Intl.NumberFormat(getLocale()).format(value);
}
