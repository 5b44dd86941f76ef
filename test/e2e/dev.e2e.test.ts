// `npm run dev` from nothing: the local stack starts, migrates, seeds the demo tenants, serves
// them by host (to curl-like clients and to a real browser), and Ctrl-C leaves nothing running.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { request } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getByHost } from "../../scripts/local/http.ts";
import { freePort } from "../../scripts/local/postgres.ts";
import { browserAvailable, launchChromium } from "../support/browser.ts";


const get = (port: number, host: string, path: string, headers: Record<string, string> = {}) => getByHost(port, host, path, { headers });

/** A JSON POST to the local Worker with a tenant's Host header. */
function postJson(port: number, host: string, path: string, body: unknown): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const req = request(
      { host: "127.0.0.1", port, path, method: "POST", headers: { Host: `${host}:${port}`, "Content-Type": "application/json" } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => done({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on("error", fail);
    req.end(JSON.stringify(body));
  });
}

/** The demo tenant admin's bearer token (the demo users' password is local demo data). */
async function adminAuth(port: number, host: string, email: string): Promise<Record<string, string>> {
  const res = await postJson(port, host, "/auth/token", { email, password: "demo-password" });
  expect(res.status).toBe(200);
  return { Authorization: `Bearer ${JSON.parse(res.body).token}` };
}

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
    expect(output).toContain(`http://acme.localhost:${workerPort}/\n`);
    expect(output).toContain(`http://globex.localhost:${workerPort}/\n`);
  });

  it("serves each demo tenant its own seeded data by host", async () => {
    expect((await get(workerPort, "acme.localhost", "/users")).status).toBe(401);
    const acme = await get(workerPort, "acme.localhost", "/users", await adminAuth(workerPort, "acme.localhost", "wile@acme.test"));
    const globex = await get(workerPort, "globex.localhost", "/users", await adminAuth(workerPort, "globex.localhost", "hank@globex.test"));
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
