/** A short "Browser · OS" label for a session's user agent; the full string goes in a tooltip. */
export function describeUserAgent(userAgent: string | null): string | null {
  if (!userAgent) return null;
  const browsers: [RegExp, string][] = [
    [/Edg\//, "Edge"],
    [/OPR\//, "Opera"],
    [/Firefox\//, "Firefox"],
    [/Chrom(e|ium)\//, "Chrome"],
    [/Safari\//, "Safari"],
    [/curl\//, "curl"],
    [/python-requests|httpx|aiohttp/i, "Python"],
  ];
  const systems: [RegExp, string][] = [
    [/Android/, "Android"],
    [/iPhone|iPad/, "iOS"],
    [/Windows/, "Windows"],
    [/Mac OS X|Macintosh/, "macOS"],
    [/CrOS/, "ChromeOS"],
    [/Linux/, "Linux"],
  ];
  const browser = browsers.find(([pattern]) => pattern.test(userAgent))?.[1];
  const system = systems.find(([pattern]) => pattern.test(userAgent))?.[1];
  const parts = [browser, system].filter((part): part is string => part !== undefined);
  return parts.length > 0 ? parts.join(" · ") : userAgent.slice(0, 40);
}

/** The first characters of a long identifier, for compact tables. */
export function shortId(id: string | null): string | null {
  return id === null ? null : id.length > 8 ? `${id.slice(0, 8)}…` : id;
}
