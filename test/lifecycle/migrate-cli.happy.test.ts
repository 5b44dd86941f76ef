// `npm run migrate -- status`, `--dry-run` and `--json`: what a user or CI reads, and that looking
// (status, dry run) changes nothing.
import { afterAll, describe, expect, it } from "vitest";
import { databaseState, hasColumn, ledger } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, migrateCli, show } from "../support/database.ts";
import { initWithTenants } from "../support/fleet.ts";
import { addMigration, checkoutTags, fixtureMigrations, removeFixtureMigrations } from "../support/migrations.ts";

afterAll(() => {
  removeFixtureMigrations();
  return dropTestDatabases();
});

const sharedTags = checkoutTags("shared");
/** What `migrate status` says of the shared track at the checkout's head. */
const SHARED_AT_HEAD = `shared: ${sharedTags.length}/${sharedTags.length} applied, head ${sharedTags.at(-1)} (at head)`;

describe("migrate status, --dry-run and --json", () => {
  it("status lists the tenants behind; a dry run applies nothing; --json reports what was done", async () => {
    const databaseUrl = await freshDatabase("migcli_status");
    const client = await connectTo(databaseUrl);
    const schemas = await initWithTenants(client, ["acme", "globex", "initech"]);
    const migrationsDir = fixtureMigrations();
    const tag = addMigration(migrationsDir, "tenant", "priority", ['ALTER TABLE "tenant"."items" ADD COLUMN "priority" integer;']);
    const cli = (...args: string[]) => migrateCli({ databaseUrl, migrationsDir }, ...args);

    // At the checkout's head; the fixture is one tenant migration ahead: every tenant is behind.
    const atStart = await cli("status");
    expect(atStart.code, show(atStart)).toBe(0);
    expect(atStart.stdout).toBe(
      [
        SHARED_AT_HEAD,
        `tenant: head ${tag}, 3 tenant(s)`,
        "        3 at 0002_user_role",
        "  behind: acme, globex, initech",
        "",
      ].join("\n"),
    );

    // Make globex fail and migrate one tenant per transaction: acme gets there, the others do not.
    await client.query(`ALTER TABLE "${schemas.globex}"."items" ADD COLUMN "priority" integer`);
    const partial = await cli("--batch-size", "1");
    expect(partial.code, show(partial)).toBe(1);
    await client.query(`ALTER TABLE "${schemas.globex}"."items" DROP COLUMN "priority"`);

    const mixed = await cli("status");
    expect(mixed.code, show(mixed)).toBe(0);
    expect(mixed.stdout).toBe(
      [
        SHARED_AT_HEAD,
        `tenant: head ${tag}, 3 tenant(s)`,
        `        1 at ${tag} (head)`,
        "        2 at 0002_user_role",
        "  behind: globex, initech",
        "",
      ].join("\n"),
    );
    const mixedJson = await cli("status", "--json");
    expect(mixedJson.code, show(mixedJson)).toBe(0);
    expect(JSON.parse(mixedJson.stdout)).toEqual({
      running: null,
      shared: { head: sharedTags.at(-1), applied: sharedTags.length, pending: [] },
      tenant: {
        head: tag,
        tenants: 3,
        versions: [
          { version: tag, count: 1 },
          { version: "0002_user_role", count: 2 },
        ],
        behind: ["globex", "initech"],
      },
    });

    // Dry runs: the plan, nothing applied.
    const before = await databaseState(client);
    const dry = await cli("--dry-run");
    expect(dry.code, show(dry)).toBe(0);
    expect(dry.stdout).toBe(`Plan (dry run, nothing applied):\ntenant: ${tag} -> globex, initech\n`);
    const dryJson = await cli("--dry-run", "--json");
    expect(dryJson.code, show(dryJson)).toBe(0);
    const dryReport = JSON.parse(dryJson.stdout);
    expect(dryReport).toMatchObject({
      applied: false,
      dryRun: true,
      transactions: 0,
      plan: { shared: [], tenants: [{ slug: "globex", pending: [tag] }, { slug: "initech", pending: [tag] }], upToDate: 1 },
    });
    expect(typeof dryReport.durationMs).toBe("number");
    expect(await databaseState(client)).toEqual(before);
    expect(await hasColumn(client, schemas.globex!, "items", "priority")).toBe(false);

    // The real run, as CI would call it.
    const run = await cli("--json");
    expect(run.code, show(run)).toBe(0);
    expect(run.stderr).toBe("");
    expect(JSON.parse(run.stdout)).toMatchObject({
      applied: true,
      dryRun: false,
      transactions: 1,
      plan: { shared: [], tenants: [{ slug: "globex", pending: [tag] }, { slug: "initech", pending: [tag] }], upToDate: 1 },
    });
    for (const schema of Object.values(schemas)) expect(await hasColumn(client, schema, "items", "priority")).toBe(true);
    expect((await ledger(client)).filter((r) => r.migration === tag).map((r) => r.schema_name)).toEqual(Object.values(schemas).sort());

    const atHead = await cli("status");
    expect(atHead.stdout).toBe(
      [SHARED_AT_HEAD, `tenant: head ${tag}, 3 tenant(s)`, `        3 at ${tag} (head)`, ""].join("\n"),
    );
    const nothing = await cli("--json");
    expect(nothing.code, show(nothing)).toBe(0);
    expect(JSON.parse(nothing.stdout)).toMatchObject({
      applied: false,
      dryRun: false,
      transactions: 0,
      plan: { shared: [], tenants: [], upToDate: 3 },
    });
  });

  it("a dry run lists pending shared migrations first, and status shows them pending", async () => {
    const databaseUrl = await freshDatabase("migcli_shared");
    const client = await connectTo(databaseUrl);
    await initWithTenants(client, ["acme", "globex"]);
    const migrationsDir = fixtureMigrations();
    const shared = addMigration(migrationsDir, "shared", "note", ['ALTER TABLE "shared"."tenants" ADD COLUMN "note" text;']);
    const tenant = addMigration(migrationsDir, "tenant", "note", ['ALTER TABLE "tenant"."items" ADD COLUMN "note" text;']);
    const before = await databaseState(client);

    const dry = await migrateCli({ databaseUrl, migrationsDir }, "--dry-run");
    expect(dry.code, show(dry)).toBe(0);
    expect(dry.stdout).toBe(`Plan (dry run, nothing applied):\nshared: ${shared}\ntenant: ${tenant} -> acme, globex\n`);
    const status = await migrateCli({ databaseUrl, migrationsDir }, "status");
    expect(status.stdout.split("\n")[0]).toBe(`shared: ${sharedTags.length}/${sharedTags.length + 1} applied, head ${shared}; pending: ${shared}`);
    expect(await databaseState(client)).toEqual(before);

    const run = await migrateCli({ databaseUrl, migrationsDir });
    expect(run.code, show(run)).toBe(0);
    expect(run.stdout).toMatch(/^Migrated: 1 shared migration\(s\), 2 tenant\(s\) in 1 transaction\(s\)\. \(\d+ ms\)\n/);
    expect(await hasColumn(client, "shared", "tenants", "note")).toBe(true);
  });

  it("on a database with no tenants: status and migrate say so plainly", async () => {
    const databaseUrl = await freshDatabase("migcli_empty");
    const client = await connectTo(databaseUrl);
    await initWithTenants(client, []);
    const status = await migrateCli({ databaseUrl }, "status");
    expect(status.code, show(status)).toBe(0);
    expect(status.stdout).toBe(`${SHARED_AT_HEAD}\ntenant: head 0002_user_role, 0 tenant(s)\n`);
    const run = await migrateCli({ databaseUrl });
    expect(run.code, show(run)).toBe(0);
    expect(run.stdout).toMatch(/^Nothing to migrate: shared and 0 tenant\(s\) at head\./);
  });
});
