// The tenant pages in a real Chromium against `npm run dev`'s stack: acme and globex side by side,
// the browser's cookie jar, a copied cookie, a form without its CSRF token, the sign-in limit, /docs
// with no request leaving the machine, accessibility (axe-core) and screenshots in
// test-artifacts/browser/ (git-ignored; CI keeps the folder).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getByHost } from "../../scripts/local/http.ts";
import { freePort } from "../../scripts/local/postgres.ts";
import { browserAvailable, launchChromium } from "../support/browser.ts";

const ARTIFACTS = resolve("test-artifacts/browser");
const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
const PASSWORD = "correct horse battery";
const unique = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

let dev: ChildProcess | undefined;
let scratch: string;
let output = "";
let port: number;
let browser: Browser;
const url = (host: string, path = "/") => `http://${host}.localhost:${port}${path}`;

/** Serious or critical axe-core violations on the page, one line each. */
async function seriousViolations(page: Page): Promise<string[]> {
  await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    const result = await (globalThis as unknown as { axe: { run: () => Promise<{ violations: Array<{ id: string; impact: string; help: string; nodes: unknown[] }> }> } }).axe.run();
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length }));
  });
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id} (${v.impact}): ${v.help} x${v.nodes}`);
}

async function signUp(page: Page, tenant: string): Promise<string> {
  const email = `chromium-${unique()}@example.com`;
  await page.goto(url(tenant));
  await page.fill("#up-email", email);
  await page.fill("#up-password", PASSWORD);
  await Promise.all([page.waitForURL(url(tenant, "/my/items")), page.click("form[action='/sign-up'] button")]);
  return email;
}

async function addItem(page: Page, title: string): Promise<void> {
  await page.fill("#title", title);
  await Promise.all([page.waitForLoadState("load"), page.click("form[action='/my/items'] button")]);
  await page.waitForSelector(`h3:text-is("${title}")`);
}

describe.runIf(browserAvailable)("the tenant pages in Chromium (npm run dev)", () => {
  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    scratch = await mkdtemp(join(tmpdir(), "edge-tenants-browser-"));
    port = await freePort();
    dev = spawn(resolve("node_modules/.bin/tsx"), ["scripts/dev.ts"], {
      env: {
        ...process.env,
        DATABASE_URL: "",
        LOCAL_DATA_DIR: join(scratch, "postgres"),
        LOCAL_PG_PORT: String(await freePort()),
        LOCAL_SQL_PORT: String(await freePort()),
        WORKER_PORT: String(port),
      },
      cwd: resolve("."),
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    dev.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    dev.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (dev.exitCode !== null) throw new Error(`npm run dev exited early:\n${output}`);
      const res = await getByHost(port, "globex.localhost", "/tenant").catch(() => undefined);
      if (res?.status === 200) break;
      if (Date.now() > deadline) throw new Error(`npm run dev did not serve the tenants in time:\n${output}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    browser = await launchChromium();
  }, 150_000);

  afterAll(async () => {
    await browser?.close();
    if (dev?.pid && dev.exitCode === null) {
      const exited = new Promise((r) => dev!.once("exit", r));
      process.kill(-dev.pid, "SIGINT");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (dev.exitCode === null) process.kill(-dev.pid, "SIGKILL");
    }
    await rm(scratch, { recursive: true, force: true });
  }, 30_000);

  it("signs up a new organisation on the apex and lands on its own host, signed in", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const slug = `web${unique()}`;
    await page.goto(`http://localhost:${port}/sign-up`);
    await page.fill("#su-slug", slug);
    await page.fill("#su-name", "Web Org");
    await page.fill("#su-email", `admin@${slug}.example`);
    await page.fill("#su-password", PASSWORD);
    await Promise.all([page.waitForURL(url(slug)), page.click("form[action='/signup'] button")]);
    expect(await page.textContent("h1")).toBe("Web Org");
    expect(await page.textContent("#you")).toBe(`Signed in as admin@${slug}.example`);
    await page.screenshot({ path: join(ARTIFACTS, "signup-landed.png"), fullPage: true });
    // The session cookie is the new host's own; the apex has none.
    expect((await context.cookies(url(slug))).some((c) => c.name === "session")).toBe(true);
    expect((await context.cookies(`http://localhost:${port}/`)).some((c) => c.name === "session")).toBe(false);
    await context.close();
  });

  it("acme and globex side by side: each user sees only their tenant's items; the jar keeps each session on its host", async () => {
    const context = await browser.newContext();
    const acme = await context.newPage();
    const globex = await context.newPage();
    await acme.goto(url("acme"));
    expect(await acme.textContent("h1")).toBe("Acme Corporation");
    await acme.screenshot({ path: join(ARTIFACTS, "home-acme.png"), fullPage: true });
    expect(await seriousViolations(acme)).toEqual([]);

    await signUp(acme, "acme");
    await signUp(globex, "globex");
    await addItem(acme, "Acme anvil");
    await addItem(globex, "Globex laser");
    await acme.reload();
    await globex.reload();
    expect(await acme.locator("ul.items h3").allTextContents()).toEqual(["Acme anvil"]);
    expect(await globex.locator("ul.items h3").allTextContents()).toEqual(["Globex laser"]);
    await acme.screenshot({ path: join(ARTIFACTS, "items-acme.png"), fullPage: true });
    expect(await seriousViolations(acme)).toEqual([]);

    // The jar: each session cookie belongs to its own host only (no Domain: host-only), with its flags.
    const acmeCookies = await context.cookies(url("acme"));
    const globexCookies = await context.cookies(url("globex"));
    const acmeSession = acmeCookies.find((c) => c.name === "session")!;
    const globexSession = globexCookies.find((c) => c.name === "session")!;
    expect(acmeSession).toMatchObject({ domain: "acme.localhost", path: "/", httpOnly: true, secure: true, sameSite: "Lax" });
    expect(globexSession).toMatchObject({ domain: "globex.localhost", httpOnly: true, secure: true, sameSite: "Lax" });
    expect(globexCookies.filter((c) => c.name === "session").map((c) => c.value)).toEqual([globexSession.value]);
    expect(globexSession.value).not.toBe(acmeSession.value);

    // A copied cookie: acme's session planted at globex in a fresh browser is refused.
    const thief = await browser.newContext();
    await thief.addCookies([{ name: "session", value: acmeSession.value, domain: "globex.localhost", path: "/", httpOnly: true, secure: true, sameSite: "Lax" }]);
    const page = await thief.newPage();
    const refused = await page.goto(url("globex", "/my/items"));
    expect(refused?.status()).toBe(401);
    expect(await page.textContent("h1")).toContain("not valid at this tenant");
    expect(await page.textContent("body")).not.toContain("Acme anvil");
    await page.screenshot({ path: join(ARTIFACTS, "error-401.png"), fullPage: true });
    expect(await seriousViolations(page)).toEqual([]);
    // ... and a bearer token from acme too.
    const token = await acme.evaluate(async (password) => {
      const email = document.querySelector("p")!.textContent!.match(/Signed in as (\S+)/)![1];
      const res = await fetch("/auth/token", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ email, password }) });
      return ((await res.json()) as { token: string }).token;
    }, PASSWORD);
    const atGlobex = await page.evaluate(async (t) => (await fetch("/me", { headers: { Authorization: `Bearer ${t}` } })).status, token);
    expect(atGlobex).toBe(401);
    await thief.close();
    await context.close();
  }, 120_000);

  it("refuses a form posted without its CSRF token (403 page), and creates nothing", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await signUp(page, "acme");
    await page.evaluate(() => document.querySelector("form[action='/my/items'] input[name=csrf]")!.remove());
    await page.fill("#title", "forged item");
    const [res] = await Promise.all([page.waitForNavigation(), page.click("form[action='/my/items'] button")]);
    expect(res?.status()).toBe(403);
    expect(await page.textContent("body")).toContain("csrf_failed");
    await page.goto(url("acme", "/my/items"));
    expect(await page.textContent("body")).not.toContain("forged item");
    await context.close();
  }, 60_000);

  it("shows the 429 page once the sign-in limit is reached", async () => {
    // A client address of its own (as Cloudflare would set it), so the limit reached here is this
    // browser's alone, not that of other tests signing in at globex from this machine.
    const context = await browser.newContext({ extraHTTPHeaders: { "CF-Connecting-IP": "198.51.100.77" } });
    const page = await context.newPage();
    await page.goto(url("globex"));
    let status = 0;
    // Up to 25 attempts against a limit of 10 a minute: the local limiter counts in fixed windows,
    // and 12 attempts that straddle a window's end (6 + 6) never reach it (seen in CI).
    for (let i = 0; i < 25 && status !== 429; i++) {
      await page.fill("#in-email", "hank@globex.test");
      await page.fill("#in-password", `wrong-${i}`);
      const [res] = await Promise.all([page.waitForNavigation(), page.click("form[action='/sign-in'] button")]);
      status = res?.status() ?? 0;
      if (status !== 429) expect(status).toBe(401);
    }
    expect(status).toBe(429);
    expect(await page.textContent("h1")).toContain("Too many sign-in attempts");
    await page.screenshot({ path: join(ARTIFACTS, "error-429.png"), fullPage: true });
    expect(await seriousViolations(page)).toEqual([]);
    await context.close();
  }, 90_000);

  it("renders /docs from the Worker's own assets, with no request leaving the machine", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const requests: string[] = [];
    page.on("request", (r) => requests.push(r.url()));
    await page.goto(url("acme", "/docs"));
    await page.waitForSelector(".swagger-ui .info .title", { timeout: 30_000 });
    expect(await page.textContent(".swagger-ui .info .title")).toContain("edge-tenants example API");
    await page.locator(".opblock-summary-path", { hasText: "/auth/token" }).first().waitFor();
    await page.screenshot({ path: join(ARTIFACTS, "docs.png"), fullPage: true });
    const outside = requests.filter((r) => {
      const { protocol, hostname } = new URL(r);
      return !(protocol === "data:" || hostname === "localhost" || hostname.endsWith(".localhost") || hostname === "127.0.0.1");
    });
    expect(outside).toEqual([]);
    expect(requests.length).toBeGreaterThanOrEqual(3);
    await context.close();
  }, 60_000);

  it("shows the apex landing page at localhost with a sign-up link to the sign-up form", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const res = await page.goto(`http://localhost:${port}/`);
    expect(res?.status()).toBe(200);
    await page.screenshot({ path: join(ARTIFACTS, "apex.png"), fullPage: true });
    expect(await seriousViolations(page)).toEqual([]);
    await Promise.all([page.waitForURL(`http://localhost:${port}/sign-up`), page.click("a[href='/sign-up']")]);
    expect(await page.locator("form[action='/signup'] button").textContent()).toBe("Create my organisation");
    expect(await seriousViolations(page)).toEqual([]);
    await context.close();
  }, 60_000);
});
