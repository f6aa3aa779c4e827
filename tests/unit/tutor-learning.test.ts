import { describe, expect, it } from "vitest";
import { answerCacheKey, normalizeQuestion } from "../../server/tutor/answer-cache.ts";
import { bucket, pickVariant, wilson } from "../../server/tutor/experiments.ts";
import { scrubPersonalData } from "../../server/tutor/export.ts";

describe("experiment maths", () => {
  it("computes the Wilson score interval", () => {
    // Reference values (Wilson 1927; as tabulated by Newcombe 1998): 8 of 10 → 0.4902–0.9433, 0 of 10 → 0–0.2775.
    const [lo, hi] = wilson(8, 10);
    expect(lo).toBeCloseTo(0.4902, 4);
    expect(hi).toBeCloseTo(0.9433, 4);
    const [zlo, zhi] = wilson(0, 10);
    expect(zlo).toBe(0);
    expect(zhi).toBeCloseTo(0.2775, 4);
    expect(wilson(0, 0)).toEqual([0, 1]);
    // Narrower with more ratings at the same rate.
    const [a, b] = wilson(800, 1000);
    expect(b - a).toBeLessThan(hi - lo);
    expect(a).toBeLessThan(0.8);
    expect(b).toBeGreaterThan(0.8);
  });

  it("assigns users to variants deterministically, in proportion to the weights", () => {
    const variants = [
      { id: "a", weight: 1 },
      { id: "b", weight: 3 },
    ];
    const counts = { a: 0, b: 0 };
    for (let i = 0; i < 10_000; i++) {
      const at = bucket("experiment-1", `user-${i}`);
      expect(at).toBeGreaterThanOrEqual(0);
      expect(at).toBeLessThan(1);
      counts[pickVariant(variants, at).id as "a" | "b"] += 1;
    }
    expect(counts.a / 10_000).toBeGreaterThan(0.23);
    expect(counts.a / 10_000).toBeLessThan(0.27);
    // the same user, the same variant; another experiment shuffles again
    expect(bucket("experiment-1", "user-42")).toBe(bucket("experiment-1", "user-42"));
    expect(bucket("experiment-2", "user-42")).not.toBe(bucket("experiment-1", "user-42"));
  });
});

describe("the answer cache key", () => {
  it("ignores case, spacing and end punctuation, and nothing else", () => {
    expect(normalizeQuestion("  What is   a LIST?? ")).toBe("what is a list");
    const base = {
      question: "What is a list?",
      language: "en",
      kind: "concept",
      passageIds: ["lists:summary"],
      variant: null,
      provider: "openai",
      model: "m",
    };
    expect(answerCacheKey({ ...base, question: "what is a list" })).toBe(answerCacheKey(base));
    expect(answerCacheKey({ ...base, question: "What is a tuple?" })).not.toBe(answerCacheKey(base));
    expect(answerCacheKey({ ...base, passageIds: ["tuples:summary"] })).not.toBe(answerCacheKey(base));
    expect(answerCacheKey({ ...base, variant: "x:a" })).not.toBe(answerCacheKey(base));
    expect(answerCacheKey({ ...base, model: "other" })).not.toBe(answerCacheKey(base));
  });
});

describe("personal data removed from exports", () => {
  it("removes e-mail addresses, phone numbers, IP addresses, credentials in URLs and members' names", () => {
    const text =
      "Hi, I'm Alice Martin (alice.martin@example.com, +33 6 12 34 56 78), my server is 192.168.1.20 and " +
      "https://bob:secret@git.example.com/repo. Ask alice or Bob. range(10) and 3.14 and 2024 stay.";
    const out = scrubPersonalData(text, ["Alice Martin", "Bob"]);
    expect(out).not.toMatch(/alice|martin|bob|secret|192\.168|12 34 56/i);
    expect(out).toContain("[email]");
    expect(out).toContain("[phone]");
    expect(out).toContain("[ip]");
    expect(out).toContain("[url]");
    expect(out).toContain("[name]");
    expect(out).toContain("range(10) and 3.14 and 2024 stay.");
  });

  it("leaves names inside other words alone", () => {
    expect(scrubPersonalData("Bobby tables and bob", ["Bob"])).toBe("Bobby tables and [name]");
  });
});
