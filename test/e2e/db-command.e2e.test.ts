// `npm run db`: refuses to expose the SQL endpoint beyond loopback unless told to, and prints the
// database URL with its password masked unless asked (`--show-url`).
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CREDENTIALS_FILE } from "../../scripts/local/defaults.ts";
import { freePort } from "../../scripts/local/postgres.ts";
import { startDbCommand } from "../support/db-command.ts";

let scratch: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "edge-tenants-db-"));
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  await rm(scratch, { recursive: true, force: true });
});

/** Runs `npm run db` (tsx scripts/local/db.ts) until `until` matches its output or it exits. */
async function runDb(args: string[], env: Record<string, string>, until?: RegExp) {
  const run = startDbCommand(args, env, scratch, until);
  children.add(run.child);
  await run.ready;
  return run;
}

describe("npm run db", () => {
  it("refuses a LOCAL_SQL_HOST that is not loopback, before starting anything", async () => {
    const dataDir = join(scratch, "refused");
    const run = await runDb([], { LOCAL_SQL_HOST: "0.0.0.0", LOCAL_DATA_DIR: dataDir, LOCAL_PG_PORT: String(await freePort()) });
    expect(await run.exited).toBe(1);
    expect(run.output()).toBe(
      "error: LOCAL_SQL_HOST=0.0.0.0 is not a loopback address, so anyone who can reach it and knows a database " +
        "password could run SQL: use 127.0.0.1, or pass --unsafe-listen if you really mean it\n",
    );
    expect(existsSync(dataDir)).toBe(false);
  }, 30_000);

  it("masks the password unless --show-url; listens beyond loopback only with --unsafe-listen, with a warning", async () => {
    const dataDir = join(scratch, "pg");
    const env = {
      LOCAL_SQL_HOST: "0.0.0.0",
      LOCAL_DATA_DIR: dataDir,
      LOCAL_PG_PORT: String(await freePort()),
      LOCAL_SQL_PORT: String(await freePort()),
    };
    const first = await runDb(["--unsafe-listen"], env, /Ready\./);
    const { password } = JSON.parse(readFileSync(join(dataDir, CREDENTIALS_FILE), "utf8"));
    expect(first.output()).toContain(`DATABASE_URL=postgresql://postgres:****@127.0.0.1:${env.LOCAL_PG_PORT}/edge_tenants`);
    expect(first.output()).toContain("warning: --unsafe-listen: the SQL endpoint listens on 0.0.0.0, not loopback");
    expect(first.output()).not.toContain(password);
    first.child.kill("SIGINT");
    expect(await first.exited).toBe(0);

    const second = await runDb(["--show-url"], { ...env, LOCAL_SQL_HOST: "127.0.0.1" }, /Ready\./);
    expect(second.output()).toContain(
      `DATABASE_URL=postgresql://postgres:${password}@127.0.0.1:${env.LOCAL_PG_PORT}/edge_tenants`,
    );
    expect(second.output()).not.toContain("warning");
    second.child.kill("SIGINT");
    expect(await second.exited).toBe(0);
  }, 90_000);

  it("answers an unknown option with its usage", async () => {
    const run = await runDb(["--shwo-url"], {});
    expect(await run.exited).toBe(2);
    expect(run.output()).toBe("error: unknown option --shwo-url: npm run db takes --citus, --delay-ms N, --show-url and --unsafe-listen\n");
  }, 30_000);
});
