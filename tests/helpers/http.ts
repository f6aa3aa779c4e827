/** A response read whole: status, headers and the parsed JSON body (or the text, or null). */
export interface Reply<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

/**
 * A small HTTP client that behaves like a browser on our page: it keeps the session cookie and sends the
 * page's Origin on unsafe methods. `bearer` switches it to token auth (no cookie, no Origin), like a script.
 */
export class Client {
  cookie: string | undefined;
  bearer: string | undefined;

  constructor(readonly baseUrl: string) {}

  async call<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Reply<T>> {
    const h: Record<string, string> = { ...headers };
    if (this.bearer) h.authorization = `Bearer ${this.bearer}`;
    else if (this.cookie) h.cookie = this.cookie;
    if (!this.bearer && method !== "GET" && method !== "HEAD" && !("origin" in h)) h.origin = this.baseUrl;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = typeof body === "string" ? body : JSON.stringify(body);
      h["content-type"] ??= "application/json";
    }
    const res = await fetch(this.baseUrl + path, { method, headers: h, body: payload });
    const setCookie = res.headers.getSetCookie();
    for (const c of setCookie) {
      const [pair] = c.split(";");
      if (!pair) continue;
      const value = pair.slice(pair.indexOf("=") + 1);
      this.cookie = value === "" || /max-age=0/i.test(c) ? undefined : pair;
    }
    const text = await res.text();
    let parsed: unknown = text || null;
    if (text && /[/+]json\b/.test(res.headers.get("content-type") ?? "")) parsed = JSON.parse(text);
    return { status: res.status, headers: res.headers, body: parsed as T };
  }

  get<T = unknown>(path: string, headers?: Record<string, string>) {
    return this.call<T>("GET", path, undefined, headers);
  }
  post<T = unknown>(path: string, body?: unknown, headers?: Record<string, string>) {
    return this.call<T>("POST", path, body, headers);
  }
  patch<T = unknown>(path: string, body?: unknown, headers?: Record<string, string>) {
    return this.call<T>("PATCH", path, body, headers);
  }
  put<T = unknown>(path: string, body?: unknown, headers?: Record<string, string>) {
    return this.call<T>("PUT", path, body, headers);
  }
  delete<T = unknown>(path: string, headers?: Record<string, string>) {
    return this.call<T>("DELETE", path, undefined, headers);
  }
}
