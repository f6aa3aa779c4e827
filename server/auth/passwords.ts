import { hash, verify } from "@node-rs/argon2";
import type { FieldError } from "../../shared/errors.ts";

// argon2id (the library's default algorithm) with its default cost: ~8 ms per hash on our machines.
export const hashPassword = (password: string): Promise<string> => hash(password);

export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  try {
    return await verify(stored, password);
  } catch {
    return false;
  }
}

let dummy: Promise<string> | undefined;
/** Spends the time of one verification so that an unknown email answers as slowly as a wrong password. */
export async function burnVerification(password: string): Promise<void> {
  dummy ??= hashPassword("timing-equaliser-not-a-real-password");
  await verifyPassword(await dummy, password);
}

/**
 * The policy beyond length (checked by the zod schema): the password must not be, or contain, the user's own
 * email, its local part, or display name. No composition rules, as NIST SP 800-63B advises.
 */
export function passwordProblems(
  password: string,
  user: { email: string; displayName: string },
  field = "body.password",
): FieldError[] {
  const p = password.toLowerCase();
  const local = user.email.toLowerCase().split("@")[0] ?? "";
  const name = user.displayName.toLowerCase().replace(/\s+/g, "");
  const personal = [user.email.toLowerCase(), local, name, user.displayName.toLowerCase()].filter((s) => s.length >= 3);
  if (personal.some((s) => p.includes(s) || s.includes(p))) {
    return [{ path: field, message: "must not contain your email or your name" }];
  }
  return [];
}
