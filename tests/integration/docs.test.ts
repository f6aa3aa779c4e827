import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "../helpers/server.ts";

let s: TestServer;
beforeAll(async () => {
  s = await startServer();
});
afterAll(() => s.close());

describe("API documentation", () => {
  it("serves an OpenAPI 3.1 document describing every route with its permission", async () => {
    const res = await fetch(`${s.url}/api/v1/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as {
      openapi: string;
      paths: Record<string, Record<string, { "x-permission"?: string }>>;
    };
    expect(doc.openapi).toBe("3.1.0");
    const ops = Object.values(doc.paths).flatMap((p) => Object.values(p));
    expect(ops.length).toBeGreaterThanOrEqual(12);
    expect(ops.every((o) => typeof o["x-permission"] === "string")).toBe(true);
  });

  it("serves Swagger UI from our own origin, with a CSP of its own", async () => {
    const page = await fetch(`${s.url}/api/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toMatch(/script-src 'self';/);
    const html = await page.text();
    expect(html).toMatch(/\/api\/docs\/swagger-ui-bundle\.js/);
    expect(html).not.toMatch(/https?:\/\//);
    for (const asset of ["swagger-ui-bundle.js", "swagger-ui.css", "init.js"]) {
      const res = await fetch(`${s.url}/api/docs/${asset}`);
      expect(res.status, asset).toBe(200);
      expect((await res.arrayBuffer()).byteLength, asset).toBeGreaterThan(50);
    }
    const missing = await fetch(`${s.url}/api/docs/..%2F..%2Fpackage.json`);
    expect(missing.status).toBe(404);
    expect((await fetch(`${s.url}/api/docs/index.html`)).status).toBe(404);
  });
});
