// Checksums ignore line endings: a CRLF checkout of applied migration files (git's autocrlf on
// Windows) is the same migration, while a real edit is still refused.
import { afterAll, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ledger } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, migrateCli, show, tenantsCli } from "../support/database.ts";
import { checkoutTags, editMigration, fixtureMigrations, removeFixtureMigrations } from "../support/migrations.ts";
import { REPO_ROOT } from "../support/database.ts";

afterAll(() => {
  removeFixtureMigrations();
  return dropTestDatabases();
});

it("a CRLF copy of every applied file is accepted; a real edit is refused, saying line endings do not count", async () => {
  const databaseUrl = await freshDatabase("crlf");
  const migrationsDir = fixtureMigrations();
  const ok = async (args: string[]) => {
    const r = await tenantsCli({ databaseUrl, migrationsDir }, ...args);
    expect(r.code, show(r)).toBe(0);
  };
  await ok(["init"]);
  await ok(["create", "acme", "--name", "Acme", "--host", "acme.example.com"]);
  const client = await connectTo(databaseUrl);

  for (const track of ["shared", "tenant"] as const) {
    for (const tag of checkoutTags(track)) {
      editMigration(migrationsDir, track, tag, (text) => text.replace(/\r?\n/g, "\r\n"));
    }
  }
  const tag = checkoutTags("tenant").at(-1)!;
  expect(readFileSync(join(migrationsDir, "tenant", `${tag}.sql`), "utf8")).toContain("\r\n");

  const r = await migrateCli({ databaseUrl, migrationsDir });
  expect(r.code, show(r)).toBe(0);
  expect(r.stdout).toMatch(/^Nothing to migrate: shared and 1 tenant\(s\) at head\./);
  await ok(["create", "globex", "--name", "Globex", "--host", "globex.example.com"]);

  const before = await ledger(client);
  editMigration(migrationsDir, "tenant", tag, (text) => text.replace(/;(\r\n)?$/, "; -- tweaked$1"));
  const edited = await migrateCli({ databaseUrl, migrationsDir });
  expect(edited.code, show(edited)).toBe(1);
  expect(edited.stderr).toContain(`error: migrations/tenant/${tag}.sql was edited after it was applied`);
  expect(edited.stderr).toContain("line endings do not count, so this is a real edit");
  expect(await ledger(client)).toEqual(before);
});

it(".gitattributes keeps migration files LF in every checkout", () => {
  expect(readFileSync(join(REPO_ROOT, ".gitattributes"), "utf8")).toMatch(/^\*\.sql text eol=lf$/m);
});
