// `npm run dev -- --hyperdrive`: the same local stack, with the Worker on its Hyperdrive client
// (wrangler dev --env hyperdrive; miniflare's local Hyperdrive binding connects straight to the
// embedded database as the app role). The demo tenants are served their own data, and Ctrl-C leaves
// nothing running. `npm run dev -- --citus` is the same on a local Citus cluster (coordinator and
// two workers; the Worker on its Hyperdrive client, as a Citus deployment is): the demo tenants are
// distributed schemas on the workers.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { request } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getByHost } from "../../scripts/local/http.ts";
import { freePort } from "../../scripts/local/postgres.ts";
import { citusUnavailable, freeCitusPorts } from "../../scripts/local/citus.ts";
import { TENANTS_CLI } from "../support/database.ts";

const citusMissing = citusUnavailable();
if (citusMissing && process.env.REQUIRE_CITUS === "1") throw new Error(`REQUIRE_CITUS=1 but ${citusMissing}`);

const get = (port: number, host: string, path: string, headers: Record<string, string> = {}) => getByHost(port, host, path, { headers });

/** The demo tenant admin's bearer token (the demo users' password is local demo data). */
function adminAuth(port: number, host: string, email: string): Promise<Record<string, string>> {
  return new Promise((done, fail) => {
    const req = request(
      { host: "127.0.0.1", port, path: "/auth/token", method: "POST", headers: { Host: `${host}:${port}`, "Content-Type": "application/json" } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () =>
          res.statusCode === 200 ? done({ Authorization: `Bearer ${JSON.parse(text).token}` }) : fail(new Error(`POST /auth/token answered ${res.statusCode}: ${text}`)),
        );
      },
    );
    req.on("error", fail);
    req.end(JSON.stringify({ email, password: "demo-password" }));
  });
}

function processesMentioning(text: string): string[] {
  const out = execFileSync("ps", ["-eo", "pid,args"], { encoding: "utf8" });
  return out.split("\n").filter((line) => line.includes(text) && !line.includes("ps -eo"));
}

describe.each([
  { flag: "--hyperdrive", citus: false },
  { flag: "--citus", citus: true },
])("npm run dev -- $flag", ({ flag, citus }) => {
  if (citus && citusMissing) return void it.skip(`needs Citus: ${citusMissing}`, () => {});
  let dev: ChildProcess;
  let scratch: string;
  let output = "";
  let workerPort: number;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), "edge-tenants-dev-hd-"));
    workerPort = await freePort();
    dev = spawn(resolve("node_modules/.bin/tsx"), ["scripts/dev.ts", flag], {
      env: {
        ...process.env,
        DATABASE_URL: "",
        LOCAL_DATA_DIR: join(scratch, "postgres"),
        LOCAL_CITUS_DATA_DIR: join(scratch, "citus"),
        LOCAL_CITUS_PORT: String(await freeCitusPorts()),
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
      if (dev.exitCode !== null) throw new Error(`npm run dev -- ${flag} exited early:\n${output}`);
      try {
        if ((await get(workerPort, "acme.localhost", "/tenant")).status === 200) break;
      } catch {}
      if (Date.now() > deadline) throw new Error(`npm run dev -- ${flag} did not serve acme in time:\n${output}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }, 120_000);

  afterAll(async () => {
    if (dev && dev.exitCode === null) dev.kill("SIGKILL");
    await rm(scratch, { recursive: true, force: true });
  });

  it("says which client serves, and wrangler has the HYPERDRIVE binding", () => {
    expect(output).toContain("Database client: hyperdrive");
    expect(output).toMatch(/HYPERDRIVE.*Hyperdrive/);
    // The connection string (with the app role's password) is never printed.
    expect(output).not.toMatch(/postgres(ql)?:\/\/edge_tenants_app:[^*\s]/);
  });

  it("serves each demo tenant its own data over the Hyperdrive binding", async () => {
    expect((await get(workerPort, "acme.localhost", "/users")).status).toBe(401);
    const acme = await get(workerPort, "acme.localhost", "/users", await adminAuth(workerPort, "acme.localhost", "wile@acme.test"));
    const globex = await get(workerPort, "globex.localhost", "/users", await adminAuth(workerPort, "globex.localhost", "hank@globex.test"));
    expect(acme.status).toBe(200);
    expect(JSON.parse(acme.body).map((u: { email: string }) => u.email)).toEqual(["wile@acme.test", "road@acme.test"]);
    expect(JSON.parse(globex.body).map((u: { email: string }) => u.email)).toEqual(["hank@globex.test"]);
    expect((await get(workerPort, "localhost", "/health")).status).toBe(200);
    expect((await get(workerPort, "nobody.localhost", "/users")).status).toBe(403);
  });

  it.runIf(citus)("keeps the demo tenants as distributed schemas on the workers", async () => {
    expect(output).toContain("(local Citus cluster: coordinator; workers on ports");
    const placement = await new Promise<string>((done, fail) => {
      const cli = spawn(process.execPath, [TENANTS_CLI, "placement", "--json"], {
        env: { ...process.env, DATABASE_URL: "", LOCAL_DATA_DIR: join(scratch, "postgres"), LOCAL_CITUS_DATA_DIR: join(scratch, "citus") },
      });
      let out = "";
      cli.stdout.on("data", (d: Buffer) => (out += d.toString()));
      cli.once("error", fail);
      cli.once("exit", (code) => (code === 0 ? done(out) : fail(new Error(`tenants placement exited ${code}: ${out}`))));
    });
    const tenants = (JSON.parse(placement) as { tenants: Array<{ slug: string; distributed: boolean; node: string }> }).tenants;
    for (const slug of ["acme", "globex"]) {
      expect(tenants.find((t) => t.slug === slug)).toMatchObject({ distributed: true, node: expect.stringMatching(/^worker[12]$/) });
    }
  });

  it("stops PostgreSQL, the endpoint and workerd on Ctrl-C", async () => {
    const exited = new Promise<number | null>((done) => dev.once("exit", (code) => done(code)));
    dev.kill("SIGINT");
    expect(await exited).toBe(0);
    await new Promise((r) => setTimeout(r, 1_000));
    // (The Citus nodes run from data folders under scratch: none is left either.)
    expect(processesMentioning(scratch)).toEqual([]);
    expect(processesMentioning(`--port ${workerPort}`)).toEqual([]);
  }, 30_000);
});
