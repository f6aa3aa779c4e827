import { tick } from "svelte";
import type { z } from "zod";
import { ApiError } from "./api.ts";
import type { Msg } from "./i18n.ts";

/** Field name → message to show under that field. */
export type FieldErrors = Partial<Record<string, Msg>>;

function issueMessage(issue: z.core.$ZodIssue): Msg {
  switch (issue.code) {
    case "too_small":
      return Number(issue.minimum) <= 1
        ? { key: "validation.required" }
        : { key: "validation.tooShort", vars: { min: Number(issue.minimum) } };
    case "too_big":
      return { key: "validation.tooLong", vars: { max: Number(issue.maximum) } };
    case "invalid_format":
      return issue.format === "email" ? { key: "validation.email" } : { key: "validation.invalid" };
    default:
      return { key: "validation.invalid" };
  }
}

export type Validated<T> = { ok: true; data: T } | { ok: false; errors: FieldErrors };

/** Validate form values with a shared schema before sending; the first issue per field wins. */
export function validate<T>(schema: z.ZodType<T>, values: unknown): Validated<T> {
  const result = schema.safeParse(values);
  if (result.success) return { ok: true, data: result.data };
  const errors: FieldErrors = {};
  const record: Record<string, unknown> = typeof values === "object" && values !== null ? { ...values } : {};
  for (const issue of result.error.issues) {
    const field = String(issue.path[0] ?? "_form");
    const empty = typeof record[field] === "string" && String(record[field]).trim() === "";
    errors[field] ??= empty ? { key: "validation.required" } : issueMessage(issue);
  }
  return { ok: false, errors };
}

/** Field errors reported by the server (`path` like `body.email`), shown as generic "not valid". */
export function serverFieldErrors(error: unknown): FieldErrors {
  const errors: FieldErrors = {};
  if (!(error instanceof ApiError)) return errors;
  for (const field of error.fields) {
    const name = field.path.replace(/^(body|query|params)\./, "").split(".")[0] ?? field.path;
    errors[name] ??= { key: "validation.invalid" };
  }
  return errors;
}

/** After a failed validation, move the focus to the first invalid field so keyboard users land on it. */
export async function focusFirstInvalid(form: HTMLFormElement | undefined): Promise<void> {
  await tick();
  const field = form?.querySelector<HTMLElement>('[aria-invalid="true"]');
  field?.focus();
}
