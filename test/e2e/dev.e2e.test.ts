// `npm run dev` from nothing: the local stack starts, migrates, seeds the demo tenants, serves
// them by host (to curl-like clients and to a real browser), and Ctrl-C leaves nothing running.
import { type ChildProcess } from "node:child_process";
import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { browserAvailable, launchChromium } from "../support/browser.ts";
import { expectDemoTenantsServed, get, processesMentioning, startDev } from "../support/dev-command.ts";

describe("npm run dev", () => {
  let dev: ChildProcess;
  let scratch: string;
  let workerPort: number;
  let output: () => string;

  beforeAll(async () => {
    const run = await startDev([]);
    ({ child: dev, scratch, workerPort, output } = run);
  }, 120_000);

  afterAll(async () => {
    if (dev && dev.exitCode === null) dev.kill("SIGKILL");
    await rm(scratch, { recursive: true, force: true });
  });

  it("prints the database, the endpoint and the tenants' URLs", () => {
    expect(output()).toMatch(/DATABASE_URL=postgresql:\/\/.*\(embedded PostgreSQL\)/);
    expect(output()).toMatch(/SQL endpoint: http:\/\/127\.0\.0\.1:\d+\/sql/);
    expect(output()).toContain(`http://acme.localhost:${workerPort}/\n`);
    expect(output()).toContain(`http://globex.localhost:${workerPort}/\n`);
  });

  it("serves each demo tenant its own seeded data by host", async () => {
    await expectDemoTenantsServed(workerPort);
  });

  // CI installs Chromium and sets REQUIRE_BROWSER, so there this test cannot be skipped.
  it.runIf(browserAvailable)("answers a real browser at http://<tenant>.localhost", async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const res = await page.goto(`http://globex.localhost:${workerPort}/tenant`);
      expect(res?.status()).toBe(200);
      expect(await page.textContent("body")).toContain("Globex Corporation");
      const unknown = await page.goto(`http://nobody.localhost:${workerPort}/users`);
      expect(unknown?.status()).toBe(403);
      expect(await page.textContent("h1")).toContain("No tenant answers at nobody.localhost");
    } finally {
      await browser.close();
    }
  }, 60_000);

  it("stops PostgreSQL, the endpoint and workerd on Ctrl-C", async () => {
    const exited = new Promise<number | null>((done) => dev.once("exit", (code) => done(code)));
    dev.kill("SIGINT");
    expect(await exited).toBe(0);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(processesMentioning(scratch)).toEqual([]);
    expect(processesMentioning(`--port ${workerPort}`)).toEqual([]);
    await expect(get(workerPort, "acme.localhost", "/tenant")).rejects.toThrow();
  }, 30_000);
});
