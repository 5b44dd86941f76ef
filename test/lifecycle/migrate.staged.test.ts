// A subset of tenants (`--tenant`, `--only`) and staged rollouts (`--canary N --batch-size M
// --max-failures K`): what is applied and recorded where, what each stage printed, and the re-run.
import { afterAll, describe, expect, it, vi } from "vitest";
import type pg from "pg";
import { databaseState, hasColumn, ledger } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, migrateCli, show } from "../support/database.ts";
import { initWithTenants } from "../support/fleet.ts";
import { addMigration, fixtureMigrations, removeFixtureMigrations } from "../support/migrations.ts";

// Each test starts several CLI processes; on a loaded machine they take seconds each.
vi.setConfig({ testTimeout: 180_000 });

afterAll(() => {
  removeFixtureMigrations();
  return dropTestDatabases();
});

// Runs go alphabetically by slug.
const ALPHABETICAL = ["alpha", "bravo", "charlie", "delta", "echo"];

/** Five tenants at the checkout's head; `broken` got items.priority by hand; a fixture adds it everywhere. */
async function fleet(label: string, broken: string[] = []) {
  const databaseUrl = await freshDatabase(label);
  const client = await connectTo(databaseUrl);
  const schemas = await initWithTenants(client, ["echo", "charlie", "alpha", "delta", "bravo"]);
  for (const slug of broken) await client.query(`ALTER TABLE "${schemas[slug]}"."items" ADD COLUMN "priority" integer`);
  const migrationsDir = fixtureMigrations();
  const tag = addMigration(migrationsDir, "tenant", "priority", ['ALTER TABLE "tenant"."items" ADD COLUMN "priority" integer;']);
  const cli = (...args: string[]) => migrateCli({ databaseUrl, migrationsDir }, ...args);
  const recorded = async () => {
    const bySchema = new Map(Object.entries(schemas).map(([slug, schema]) => [schema, slug]));
    return (await ledger(client)).filter((r) => r.migration === tag).map((r) => bySchema.get(r.schema_name)!).sort();
  };
  const withPriority = async () => {
    const have: string[] = [];
    for (const slug of ALPHABETICAL) if (await hasColumn(client, schemas[slug]!, "items", "priority")) have.push(slug);
    return have;
  };
  return { client, schemas, tag, cli, recorded, withPriority };
}

async function behind(cli: (...args: string[]) => ReturnType<typeof migrateCli>): Promise<string[]> {
  const status = await cli("status", "--json");
  expect(status.code, show(status)).toBe(0);
  return JSON.parse(status.stdout).tenant.behind;
}

describe("migrate a subset of tenants", () => {
  it("--tenant and --only migrate those tenants, recorded like any run; the rest stay behind", async () => {
    const { cli, recorded, withPriority } = await fleet("staged_only");
    const one = await cli("--tenant", "charlie");
    expect(one.code, show(one)).toBe(0);
    expect(one.stdout).toContain("Migrated: 0 shared migration(s), 1 tenant(s) in 1 transaction(s).");
    expect(await recorded()).toEqual(["charlie"]);
    expect(await withPriority()).toEqual(["charlie"]);
    expect(await behind(cli)).toEqual(["alpha", "bravo", "delta", "echo"]);

    const two = await cli("--only", "echo,alpha,charlie");
    expect(two.code, show(two)).toBe(0);
    expect(two.stdout).toContain("Migrated: 0 shared migration(s), 2 tenant(s) in 1 transaction(s).");
    expect(await recorded()).toEqual(["alpha", "charlie", "echo"]);
    expect(await behind(cli)).toEqual(["bravo", "delta"]);

    const again = await cli("--tenant", "charlie");
    expect(again.code, show(again)).toBe(0);
    expect(again.stdout).toMatch(/^Nothing to migrate: shared and 1 tenant\(s\) at head\./);
  });

  it("a tenant that does not exist, or bad usage: refused, nothing applied", async () => {
    const { client, cli } = await fleet("staged_only_bad");
    const before = await databaseState(client);
    const missing = await cli("--only", "alpha,nope,zulu");
    expect(missing.code, show(missing)).toBe(1);
    expect(missing.stderr).toBe("error: no tenant nope, zulu (see `npm run tenants -- list`). Nothing was applied.\n");
    for (const [args, message] of [
      [["--tenant", "alpha", "--only", "bravo"], "error: give --tenant SLUG or --only A,B, not both"],
      [["--tenant", "alpha,bravo"], "error: --tenant needs one tenant's slug (for several: --only a,b)"],
      [["--only", "alpha,,bravo"], "error: --only needs tenant slugs separated by commas, e.g. --only acme,globex"],
      [["--canary", "0"], "error: --canary needs a whole number of tenants, at least 1"],
      [["--max-failures", "2"], "error: --max-failures counts failed batches: give --batch-size N too"],
      [["--batch-size", "1", "--max-failures", "x"], "error: --max-failures needs a whole number of failed batches, at least 1"],
      [["status", "--tenant", "alpha"], "error: status shows the whole fleet: it takes only --json"],
    ] as const) {
      const r = await cli(...args);
      expect(r.code, show(r)).toBe(2);
      expect(r.stderr).toBe(`${message}\n`);
    }
    expect(await databaseState(client)).toEqual(before);
  });
});

describe("staged rollouts", () => {
  it("a failing canary stops the run: nothing else is attempted", async () => {
    const { cli, recorded, withPriority } = await fleet("staged_canary_fail", ["alpha"]);
    const r = await cli("--canary", "1", "--batch-size", "2");
    expect(r.code, show(r)).toBe(1);
    expect(r.stdout.split("\n").filter(Boolean)).toEqual([
      expect.stringMatching(/^ {2}canary \(alpha\): failed - migration tenant\/0003_priority failed on tenant alpha/),
      "  batch 1 (bravo, charlie): not run",
      "  batch 2 (delta, echo): not run",
    ]);
    expect(r.stderr).toContain(
      "The canary (tenants 1-1 of 5) was rolled back; the 0 tenants before it were migrated and recorded. " +
        "No other tenant was attempted. Fix the cause and run migrate again to finish the rest.",
    );
    expect(await recorded()).toEqual([]);
    expect(await withPriority()).toEqual(["alpha"]);
  });

  it("--max-failures 2: goes on past the first failed batch, stops at the second; a re-run after the fix finishes", async () => {
    const { client, schemas, cli, recorded, withPriority } = await fleet("staged_max_failures", ["bravo", "delta"]);
    const r = await cli("--canary", "1", "--batch-size", "1", "--max-failures", "2");
    expect(r.code, show(r)).toBe(1);
    const lines = r.stdout.split("\n").filter(Boolean);
    expect(lines.slice(0, 5)).toEqual([
      "  canary (alpha): applied",
      expect.stringMatching(/^ {2}batch 1 \(bravo\): failed - migration tenant\/0003_priority failed on tenant bravo/),
      "  batch 2 (charlie): applied",
      expect.stringMatching(/^ {2}batch 3 \(delta\): failed - /),
      "  batch 4 (echo): not run",
    ]);
    expect(r.stderr).toContain("2 of 5 tenant stages failed and were rolled back (--max-failures 2):");
    expect(r.stderr).toContain("2 tenants were migrated and recorded; 1 were not attempted.");
    expect(await recorded()).toEqual(["alpha", "charlie"]);
    expect(await behind(cli)).toEqual(["bravo", "delta", "echo"]);

    // The same failure with --json (as CI runs it): stdout still says what was applied where.
    const json = await cli("--tenant", "bravo", "--batch-size", "1", "--max-failures", "1", "--json");
    expect(json.code, show(json)).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({
      applied: false,
      complete: false,
      stages: [{ stage: "batch 1", tenants: ["bravo"], status: "failed", error: expect.stringContaining("failed on tenant bravo") }],
      error: expect.stringContaining("Batch 1 (tenants 1-1 of 1) was rolled back"),
    });
    expect(json.stderr).toContain("error: migration tenant/0003_priority failed on tenant bravo");

    // The fix, then the same command: the three left, in stages again.
    for (const slug of ["bravo", "delta"]) await client.query(`ALTER TABLE "${schemas[slug]}"."items" DROP COLUMN "priority"`);
    const rerun = await cli("--canary", "1", "--batch-size", "1", "--max-failures", "2", "--json");
    expect(rerun.code, show(rerun)).toBe(0);
    const report = JSON.parse(rerun.stdout);
    expect(report.stages).toEqual([
      { stage: "canary", tenants: ["bravo"], status: "applied" },
      { stage: "batch 1", tenants: ["delta"], status: "applied" },
      { stage: "batch 2", tenants: ["echo"], status: "applied" },
    ]);
    expect(report.transactions).toBe(3);
    expect(await recorded()).toEqual(ALPHABETICAL);
    expect(await withPriority()).toEqual(ALPHABETICAL);
  });

  it("--dry-run prints the stages and applies nothing", async () => {
    const { client, tag, cli } = await fleet("staged_dry");
    const before = await databaseState(client);
    const r = await cli("--dry-run", "--canary", "2", "--batch-size", "2", "--max-failures", "3");
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toBe(
      "Plan (dry run, nothing applied):\n" +
        `tenant: ${tag} -> alpha, bravo, charlie, delta, echo\n` +
        "stages: canary 2 tenant(s) (alpha, bravo), then 2 batch(es) of up to 2 for the other 3 tenant(s); " +
        "nothing after a failed canary; stop after 3 failed batch(es)\n",
    );
    const json = await cli("--dry-run", "--json", "--canary", "2", "--batch-size", "2");
    expect(json.code, show(json)).toBe(0);
    expect(JSON.parse(json.stdout).stages).toEqual([
      { stage: "canary", tenants: ["alpha", "bravo"] },
      { stage: "batch 1", tenants: ["charlie", "delta"] },
      { stage: "batch 2", tenants: ["echo"] },
    ]);
    expect(await databaseState(client)).toEqual(before);
  });
});
