// `npm run dev -- --hyperdrive`: the same local stack, with the Worker on its Hyperdrive client
// (wrangler dev --env hyperdrive; miniflare's local Hyperdrive binding connects straight to the
// embedded database as the app role). The demo tenants are served their own data, and Ctrl-C leaves
// nothing running. `npm run dev -- --citus` is the same on a local Citus cluster (coordinator and
// two workers; the Worker on its Hyperdrive client, as a Citus deployment is): the demo tenants are
// distributed schemas on the workers.
import { spawn, type ChildProcess } from "node:child_process";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { citusUnavailable, freeCitusPorts } from "../../scripts/local/citus.ts";
import { TENANTS_CLI } from "../support/database.ts";
import { expectDemoTenantsServed, processesMentioning, startDev } from "../support/dev-command.ts";

const citusMissing = citusUnavailable();
if (citusMissing && process.env.REQUIRE_CITUS === "1") throw new Error(`REQUIRE_CITUS=1 but ${citusMissing}`);

describe.each([
  { flag: "--hyperdrive", citus: false },
  { flag: "--citus", citus: true },
])("npm run dev -- $flag", ({ flag, citus }) => {
  if (citus && citusMissing) return void it.skip(`needs Citus: ${citusMissing}`, () => {});
  let dev: ChildProcess;
  let scratch: string;
  let workerPort: number;
  let output: () => string;

  beforeAll(async () => {
    const run = await startDev([flag], { LOCAL_CITUS_PORT: String(await freeCitusPorts()) });
    ({ child: dev, scratch, workerPort, output } = run);
  }, 120_000);

  afterAll(async () => {
    if (dev && dev.exitCode === null) dev.kill("SIGKILL");
    await rm(scratch, { recursive: true, force: true });
  });

  it("says which client serves, and wrangler has the HYPERDRIVE binding", () => {
    expect(output()).toContain("Database client: hyperdrive");
    expect(output()).toMatch(/HYPERDRIVE.*Hyperdrive/);
    // The connection string (with the app role's password) is never printed.
    expect(output()).not.toMatch(/postgres(ql)?:\/\/edge_tenants_app:[^*\s]/);
  });

  it("serves each demo tenant its own data over the Hyperdrive binding", async () => {
    await expectDemoTenantsServed(workerPort);
  });

  it.runIf(citus)("keeps the demo tenants as distributed schemas on the workers", async () => {
    expect(output()).toContain("(local Citus cluster: coordinator; workers on ports");
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
