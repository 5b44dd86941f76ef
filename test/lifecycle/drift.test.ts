// The drift check (ARCHITECTURE.md, Migrations): a database upgraded from its oldest migrations
// with two tenants must end up with exactly the catalog of a freshly initialized one.
import { afterAll, expect, it } from "vitest";
import { diffCatalogs, ledger, publicObjects, schemaCatalog, userSchemas } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, migrateCli, show, tenantsCli } from "../support/database.ts";
import { fixtureMigrations, removeFixtureMigrations, trackFiles } from "../support/migrations.ts";

afterAll(() => {
  removeFixtureMigrations();
  return dropTestDatabases();
});

const SLUGS = ["acme", "globex"];

async function ok(run: Promise<{ code: number | null; stdout: string; stderr: string }>) {
  const r = await run;
  expect(r.code, show(r)).toBe(0);
  return r;
}

it("a database upgraded from the oldest migrations matches a freshly initialized one", async () => {
  const oldest = fixtureMigrations({ shared: 1, tenant: 1 });
  expect(trackFiles(oldest, "shared")).toEqual(["0000_init.sql"]);
  expect(trackFiles(oldest, "tenant")).toEqual(["0000_init.sql"]);

  // A: born at the oldest migrations, with two tenants, then upgraded with the checkout's set.
  const urlA = await freshDatabase("drift_upgraded");
  await ok(tenantsCli({ databaseUrl: urlA, migrationsDir: oldest }, "init"));
  for (const slug of SLUGS) {
    await ok(tenantsCli({ databaseUrl: urlA, migrationsDir: oldest }, "create", slug, "--name", slug, "--host", `${slug}.example.com`));
  }
  const clientA = await connectTo(urlA);
  // Really old: no enum yet, items has no status column.
  const before = await schemaCatalog(clientA, "tenant_acme");
  expect(before.enums).toEqual([]);
  expect(before.columns.some((c) => c.startsWith("items.status "))).toBe(false);

  const upgrade = await ok(migrateCli({ databaseUrl: urlA }));
  expect(upgrade.stdout).toContain("Migrated:");
  expect(upgrade.stdout).toContain("tenant: 0001_item_status -> acme, globex");

  // B: initialized at head with tenants of the same slugs.
  const urlB = await freshDatabase("drift_fresh");
  await ok(tenantsCli({ databaseUrl: urlB }, "init"));
  for (const slug of SLUGS) {
    await ok(tenantsCli({ databaseUrl: urlB }, "create", slug, "--name", slug, "--host", `${slug}.example.com`));
  }
  const clientB = await connectTo(urlB);

  expect(await userSchemas(clientA)).toEqual(await userSchemas(clientB));
  const diff: string[] = [];
  for (const schema of ["shared", ...SLUGS.map((s) => `tenant_${s}`)]) {
    diff.push(...diffCatalogs(schema, await schemaCatalog(clientA, schema), await schemaCatalog(clientB, schema), ["upgraded", "fresh"]));
  }
  const publicA = await publicObjects(clientA);
  const publicB = await publicObjects(clientB);
  for (const o of publicA.filter((x) => !publicB.includes(x))) diff.push(`public: only in upgraded: ${o}`);
  for (const o of publicB.filter((x) => !publicA.includes(x))) diff.push(`public: only in fresh: ${o}`);
  expect(diff.join("\n"), `catalog drift between upgraded and fresh databases:\n${diff.join("\n")}`).toBe("");

  // Sanity: the comparison covered real content.
  const acme = await schemaCatalog(clientB, "tenant_acme");
  expect(acme.enums).toEqual(["item_status (draft, published, archived)"]);
  expect(acme.columns).toContain(
    "items.status tenant_acme.item_status udt=tenant_acme.item_status NOT NULL DEFAULT 'draft'::tenant_acme.item_status",
  );
  expect(acme.indexes.length).toBeGreaterThanOrEqual(3);
  expect(acme.constraints.some((c) => c.includes("FOREIGN KEY (owner_id) REFERENCES tenant_acme.users(id) ON DELETE CASCADE"))).toBe(true);

  // Both ledgers record the same files with the same checksums, each once per schema.
  const entries = async (c: typeof clientA) =>
    (await ledger(c)).map((r) => `${r.schema_name} ${r.track} ${r.migration} ${r.checksum}`);
  expect(await entries(clientA)).toEqual(await entries(clientB));

  // And a second upgrade run finds nothing to do.
  const again = await ok(migrateCli({ databaseUrl: urlA }));
  expect(again.stdout).toMatch(/^Nothing to migrate: shared and 2 tenant\(s\) at head\./);
});
