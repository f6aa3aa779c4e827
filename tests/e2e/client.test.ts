import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, type ConsoleMessage, chromium, type Page } from "playwright-core";
import { build } from "vite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "../helpers/server.ts";

const CHROMIUM = "/usr/bin/chromium";
const VITE_CONFIG = fileURLToPath(new URL("../../vite.config.ts", import.meta.url));

/** Console errors the app cannot avoid: the browser logs the expected 401 of the "who am I?" probe. */
function isExpected(message: ConsoleMessage): boolean {
  return (
    message.text().startsWith("Failed to load resource: the server responded with a status of 401") &&
    message.location().url.endsWith("/api/v1/auth/me")
  );
}

interface Problems {
  console: string[];
  pageErrors: string[];
  csp: string[];
}

/** Collect console errors and warnings, uncaught exceptions and CSP violations (reported even when caught). */
async function watch(page: Page): Promise<Problems> {
  const problems: Problems = { console: [], pageErrors: [], csp: [] };
  page.on("console", (message) => {
    if ((message.type() === "error" || message.type() === "warning") && !isExpected(message)) {
      problems.console.push(`${message.type()}: ${message.text()} (${message.location().url})`);
    }
  });
  page.on("pageerror", (error) => problems.pageErrors.push(String(error)));
  await page.exposeFunction("__reportCsp", (violation: string) => {
    problems.csp.push(violation);
  });
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (event) => {
      const report = (globalThis as unknown as { __reportCsp?: (violation: string) => void }).__reportCsp;
      report?.(`${event.violatedDirective} ${event.blockedURI} ${event.sourceFile}:${event.lineNumber}`);
    });
  });
  return problems;
}

function expectClean(problems: Problems): void {
  expect(problems.csp).toEqual([]);
  expect(problems.pageErrors).toEqual([]);
  expect(problems.console).toEqual([]);
}

describe("web client (chromium)", () => {
  let outDir: string;
  let server: TestServer;
  let browser: Browser;

  beforeAll(async () => {
    // A missing browser is a failure, not a skip: .ci/run installs it (apt-get install chromium).
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium fonts-liberation`);
    // Build the current sources into a private directory, so that client/dist is never half-written.
    outDir = await mkdtemp(join(tmpdir(), "doctorpy-client-"));
    await build({ configFile: VITE_CONFIG, logLevel: "warn", build: { outDir, emptyOutDir: true } });
    server = await startServer({ clientDir: outDir });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (outDir) await rm(outDir, { recursive: true, force: true });
  });

  it("builds an index.html without inline script or style", async () => {
    const html = await readFile(join(outDir, "index.html"), "utf8");
    expect(html).not.toMatch(/<style/i);
    expect(html).not.toMatch(/\sstyle=/i);
    for (const tag of html.match(/<script[^>]*>/gi) ?? []) expect(tag).toMatch(/\ssrc=/);
  });

  it("registers, switches to French, logs out and logs back in", { timeout: 60_000 }, async () => {
    const context = await browser.newContext({ locale: "en-US" });
    const page = await context.newPage();
    const problems = await watch(page);
    const email = `ada-${Date.now()}@example.com`;
    const password = "correct horse battery staple";

    const response = await page.goto(server.url);
    expect(response?.status()).toBe(200);
    expect(response?.headers()["content-security-policy"]).toContain("script-src 'self'");

    // Signed out: the app sends us to the login page, from which we go to the registration form.
    await page.getByRole("heading", { name: "Log in" }).waitFor();
    expect(page.url()).toMatch(/#\/login$/);
    await page.getByRole("link", { name: "Create an account" }).click();
    await page.getByRole("heading", { name: "Create your account" }).waitFor();

    // Client-side validation, translated, before anything is sent.
    await page.getByRole("button", { name: "Create my account" }).click();
    await page.getByText("This field is required.").first().waitFor();

    await page.getByLabel("Display name").fill("Ada Lovelace");
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password", { exact: true }).fill(password);
    await page.getByLabel("Confirm the password").fill(password);
    await page.getByRole("button", { name: "Create my account" }).click();

    await page.getByRole("heading", { name: "My account" }).waitFor();
    expect(page.url()).toMatch(/#\/account$/);
    expect(await page.locator(".display-name").textContent()).toBe("Ada Lovelace");
    await page.getByRole("heading", { name: "Active sessions" }).waitFor();
    await page.getByText("This device").waitFor();

    // The first account of a fresh database is an administrator: the admin pages are in the menu.
    await page.getByRole("link", { name: "Users" }).click();
    await page.getByRole("heading", { name: "Users" }).waitFor();
    await page.getByRole("cell", { name: email }).waitFor();
    await page.getByRole("link", { name: "API docs" }).waitFor();
    await page.getByRole("link", { name: "Audit log" }).first().click();
    await page.getByRole("heading", { name: "Audit log" }).waitFor();
    await page.getByRole("button", { name: "Verify the chain" }).click();
    await page.getByText(/The chain is intact/).waitFor();
    await page.getByRole("link", { name: "My account" }).click();
    await page.getByRole("heading", { name: "My account" }).waitFor();

    // Switch to French: labels change at once and the choice survives a reload.
    await page.getByLabel("Language").selectOption("fr");
    await page.getByRole("heading", { name: "Mon compte" }).waitFor();
    await page.getByText("Nom affiché").first().waitFor();
    expect(await page.locator("html").getAttribute("lang")).toBe("fr");
    await page.reload();
    await page.getByRole("heading", { name: "Mon compte" }).waitFor();

    await page.getByRole("button", { name: "Se déconnecter" }).click();
    await page.getByRole("heading", { name: "Connexion" }).waitFor();
    expect(page.url()).toMatch(/#\/login$/);

    await page.getByLabel("Adresse e-mail").fill(email);
    await page.getByLabel("Mot de passe", { exact: true }).fill(password);
    await page.getByRole("button", { name: "Se connecter" }).click();
    await page.getByRole("heading", { name: "Mon compte" }).waitFor();
    expect(await page.locator(".display-name").textContent()).toBe("Ada Lovelace");

    expectClean(problems);
    await context.close();
  });

  it("shows no admin menu to a learner and refuses the admin pages", async () => {
    const context = await browser.newContext({ locale: "en-US" });
    const page = await context.newPage();
    const problems = await watch(page);
    await page.goto(`${server.url}/#/register`);
    await page.getByLabel("Display name").fill("Grace Hopper");
    await page.getByLabel("Email").fill(`grace-${Date.now()}@example.com`);
    await page.getByLabel("Password", { exact: true }).fill("another long passphrase");
    await page.getByLabel("Confirm the password").fill("another long passphrase");
    await page.getByRole("button", { name: "Create my account" }).click();
    await page.getByRole("heading", { name: "My account" }).waitFor();
    expect(await page.getByRole("link", { name: "Users" }).count()).toBe(0);
    await page.goto(`${server.url}/#/admin/users`);
    await page.getByRole("heading", { name: "Access denied" }).waitFor();
    expectClean(problems);
    await context.close();
  });

  it("renders the API docs (Swagger UI from our origin) without CSP violations", async () => {
    const context = await browser.newContext({ locale: "en-US" });
    const page = await context.newPage();
    const problems = await watch(page);
    const foreign: string[] = [];
    page.on("request", (req) => {
      if (!req.url().startsWith(server.url) && !req.url().startsWith("data:")) foreign.push(req.url());
    });
    await page.goto(`${server.url}/api/docs`);
    await page.locator(".swagger-ui .info .title", { hasText: "DoctorPy API" }).waitFor();
    await page.locator(".opblock-summary-path", { hasText: "/api/v1/auth/login" }).first().waitFor();
    expect(foreign).toEqual([]);
    expectClean(problems);
    await context.close();
  });
});
