// --statement-timeout-ms bounds every statement of a run: a statement that runs longer is
// cancelled, the message says so, and nothing of its transaction is kept.
import { afterAll, expect, it } from "vitest";
import { ledger } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, migrateCli, show } from "../support/database.ts";
import { initWithTenants } from "../support/fleet.ts";
import { addMigration, fixtureMigrations, removeFixtureMigrations } from "../support/migrations.ts";

afterAll(() => {
  removeFixtureMigrations();
  return dropTestDatabases();
});

it("--statement-timeout-ms cancels a statement that runs longer, says so, and applies nothing", async () => {
  const databaseUrl = await freshDatabase("to_statement");
  const client = await connectTo(databaseUrl);
  await initWithTenants(client, ["acme"]);
  const migrationsDir = fixtureMigrations();
  const slow = addMigration(migrationsDir, "shared", "slow", ["SELECT pg_sleep(5);"]);
  addMigration(migrationsDir, "tenant", "note", ['ALTER TABLE "tenant"."items" ADD COLUMN "note" text;']);
  const before = await ledger(client);

  const r = await migrateCli({ databaseUrl, migrationsDir }, "--statement-timeout-ms", "300");
  expect(r.code, show(r)).toBe(1);
  expect(r.stderr).toContain(`error: shared migration ${slow} failed: canceling statement due to statement timeout (SQLSTATE 57014)`);
  expect(r.stderr).toContain("A statement ran longer than --statement-timeout-ms 300 and was cancelled");
  expect(r.stderr).toContain("Nothing was applied");
  expect(await ledger(client)).toEqual(before);
});
