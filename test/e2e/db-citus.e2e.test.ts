// `npm run db -- --citus`: a local Citus cluster (coordinator + two workers) on loopback, the
// coordinator's URL printed, the CLIs finding it without DATABASE_URL, and Ctrl-C stopping all
// three servers. Runs where Citus is installed (REQUIRE_CITUS=1, as .ci/run sets when it installed
// it, turns a missing Citus into a failure instead of a skip).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { citusUnavailable, freeCitusPorts } from "../../scripts/local/citus.ts";
import { freePort } from "../../scripts/local/postgres.ts";
import { startDbCommand } from "../support/db-command.ts";

const missing = citusUnavailable();
if (missing && process.env.REQUIRE_CITUS === "1") throw new Error(`REQUIRE_CITUS=1 but ${missing}`);

const scratch = await mkdtemp(join(tmpdir(), "edge-tenants-dbc-"));
const children = new Set<ChildProcess>();
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGINT");
  await new Promise((r) => setTimeout(r, 2_000));
  await rm(scratch, { recursive: true, force: true });
});

function start(args: string[], env: Record<string, string>, until: RegExp) {
  const run = startDbCommand(args, env, scratch, until);
  children.add(run.child);
  return run;
}

/** The PostgreSQL servers running on a data folder under `dir` (their postmaster processes). */
function serversUnder(dir: string): string[] {
  const out = execFileSync("ps", ["-eo", "args"], { encoding: "utf8" });
  return out.split("\n").filter((line) => line.includes("postgres -D") && line.includes(dir));
}

describe.skipIf(missing)("npm run db -- --citus", () => {
  it("starts a coordinator and two workers, prints the coordinator URL, and Ctrl-C stops all three", async () => {
    const port = await freeCitusPorts();
    const env = { LOCAL_CITUS_DATA_DIR: join(scratch, "citus"), LOCAL_CITUS_PORT: String(port), LOCAL_SQL_PORT: String(await freePort()) };
    const run = start(["--citus", "--show-url"], env, /Ready\.|error:/);
    await run.ready;
    expect(run.output()).toContain(`(local Citus cluster: coordinator; workers on ports ${port + 1} and ${port + 2})`);
    const url = /DATABASE_URL=(\S+)/.exec(run.output())?.[1];
    expect(url).toMatch(new RegExp(`^postgresql://postgres:[^@*]+@127\\.0\\.0\\.1:${port}/edge_tenants$`));
    expect(serversUnder(env.LOCAL_CITUS_DATA_DIR)).toHaveLength(3);

    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const nodes = await client.query<{ nodeport: number; shouldhaveshards: boolean }>(
        "SELECT nodeport, shouldhaveshards FROM pg_dist_node WHERE isactive ORDER BY nodeport",
      );
      expect(nodes.rows).toEqual([
        { nodeport: port, shouldhaveshards: false },
        { nodeport: port + 1, shouldhaveshards: true },
        { nodeport: port + 2, shouldhaveshards: true },
      ]);
    } finally {
      await client.end();
    }

    // The tenants CLI finds the coordinator on its own (no DATABASE_URL): an uninitialized database.
    const cli = spawn(process.execPath, [resolve("scripts/tenants/cli.ts"), "list"], { cwd: scratch, env: { ...process.env, DATABASE_URL: "", ...env } });
    let cliOut = "";
    cli.stderr.on("data", (d) => (cliOut += d));
    const cliCode = await new Promise((done) => cli.once("exit", done));
    expect(cliOut).toContain("the database is not initialized: run `npm run tenants -- init` first");
    expect(cliCode).toBe(1);

    // A second start on the same folder is refused while the first runs.
    const second = start(["--citus"], env, /error:/);
    expect(await second.exited).toBe(1);
    expect(second.output()).toMatch(/error: the local Citus cluster in .* already runs \(its coordinator: pid \d+, port \d+\)/);

    run.child.kill("SIGINT");
    expect(await run.exited).toBe(0);
    expect(serversUnder(env.LOCAL_CITUS_DATA_DIR)).toEqual([]);
  }, 120_000);

  it("refuses --citus while DATABASE_URL is set, starting nothing", async () => {
    const run = start(["--citus"], { DATABASE_URL: "postgresql://x@127.0.0.1:1/y", LOCAL_CITUS_DATA_DIR: join(scratch, "refused") }, /error:/);
    expect(await run.exited).toBe(2);
    expect(run.output()).toContain("error: --citus starts a local Citus cluster, but DATABASE_URL is set");
    expect(serversUnder(join(scratch, "refused"))).toEqual([]);
  }, 30_000);
});
