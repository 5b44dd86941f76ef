// `npm run dev` from nothing: the local stack starts, migrates, seeds the demo tenants, serves
// them by host (to curl-like clients and to a real browser), and Ctrl-C leaves nothing running.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getByHost } from "../../scripts/local/http.ts";
import { freePort } from "../../scripts/local/postgres.ts";
import { browserAvailable, launchChromium } from "../support/browser.ts";


const get = (port: number, host: string, path: string) => getByHost(port, host, path);

function processesMentioning(text: string): string[] {
  const out = execFileSync("ps", ["-eo", "pid,args"], { encoding: "utf8" });
  return out.split("\n").filter((line) => line.includes(text) && !line.includes("ps -eo"));
}

describe("npm run dev", () => {
  let dev: ChildProcess;
  let scratch: string;
  let output = "";
  let workerPort: number;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), "edge-tenants-dev-"));
    workerPort = await freePort();
    dev = spawn(resolve("node_modules/.bin/tsx"), ["scripts/dev.ts"], {
      env: {
        ...process.env,
        DATABASE_URL: "",
        LOCAL_DATA_DIR: join(scratch, "postgres"),
        LOCAL_PG_PORT: String(await freePort()),
        LOCAL_SQL_PORT: String(await freePort()),
        WORKER_PORT: String(workerPort),
      },
      cwd: resolve("."),
      stdio: ["ignore", "pipe", "pipe"],
    });
    dev.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    dev.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (dev.exitCode !== null) throw new Error(`npm run dev exited early:\n${output}`);
      try {
        if ((await get(workerPort, "acme.localhost", "/tenant")).status === 200) break;
      } catch {}
      if (Date.now() > deadline) throw new Error(`npm run dev did not serve acme in time:\n${output}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }, 120_000);

  afterAll(async () => {
    if (dev && dev.exitCode === null) dev.kill("SIGKILL");
    await rm(scratch, { recursive: true, force: true });
  });

  it("prints the database, the endpoint and the tenants' URLs", () => {
    expect(output).toMatch(/DATABASE_URL=postgresql:\/\/.*\(embedded PostgreSQL\)/);
    expect(output).toMatch(/SQL endpoint: http:\/\/127\.0\.0\.1:\d+\/sql/);
    expect(output).toContain(`http://acme.localhost:${workerPort}/users`);
    expect(output).toContain(`http://globex.localhost:${workerPort}/users`);
  });

  it("serves each demo tenant its own seeded data by host", async () => {
    const acme = await get(workerPort, "acme.localhost", "/users");
    const globex = await get(workerPort, "globex.localhost", "/users");
    expect(acme.status).toBe(200);
    expect(JSON.parse(acme.body).map((u: { email: string }) => u.email)).toEqual(["wile@acme.test", "road@acme.test"]);
    expect(JSON.parse(globex.body).map((u: { email: string }) => u.email)).toEqual(["hank@globex.test"]);
    expect((await get(workerPort, "localhost", "/health")).status).toBe(200);
    expect((await get(workerPort, "nobody.localhost", "/users")).status).toBe(403);
  });

  // CI installs Chromium and sets REQUIRE_BROWSER, so there this test cannot be skipped.
  it.runIf(browserAvailable)("answers a real browser at http://<tenant>.localhost", async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const res = await page.goto(`http://globex.localhost:${workerPort}/users`);
      expect(res?.status()).toBe(200);
      expect(await page.textContent("body")).toContain("hank@globex.test");
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
