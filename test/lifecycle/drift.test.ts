// The drift check (ARCHITECTURE.md, Migrations): a database upgraded from its oldest migrations
// with two tenants must end up with exactly the catalog of a freshly initialized one. The old
// database's tenants have the schemas of their time (`tenant_<slug>`): the upgrade keeps them and
// records them in the registry of assigned names.
import { afterAll, expect, it, vi } from "vitest";
import { diffCatalogs, ledger, publicObjects, schemaCatalog, tenantSchemaCatalog, userSchemas } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, migrateCli, show, tenantsCli } from "../support/database.ts";
import { createLegacyTenant, schemaOf } from "../support/fleet.ts";
import { fixtureMigrations, removeFixtureMigrations, trackFiles } from "../support/migrations.ts";

// Twelve CLI processes: slow on a loaded machine.
vi.setConfig({ testTimeout: 180_000 });

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

  // A: born at the oldest migrations, with two tenants made as the code of that time made them,
  // then upgraded with the checkout's set.
  const urlA = await freshDatabase("drift_upgraded");
  await ok(tenantsCli({ databaseUrl: urlA, migrationsDir: oldest }, "init"));
  const clientA = await connectTo(urlA);
  for (const slug of SLUGS) await createLegacyTenant(clientA, slug, oldest);
  // Really old: no enum yet, items has no status column.
  const before = await schemaCatalog(clientA, "tenant_acme");
  expect(before.enums).toEqual([]);
  expect(before.columns.some((c) => c.startsWith("items.status "))).toBe(false);

  const upgrade = await ok(migrateCli({ databaseUrl: urlA }));
  expect(upgrade.stdout).toContain("Migrated:");
  expect(upgrade.stdout).toContain("tenant: 0001_item_status, 0002_user_role -> acme, globex");

  // B: initialized at head with tenants of the same slugs.
  const urlB = await freshDatabase("drift_fresh");
  await ok(tenantsCli({ databaseUrl: urlB }, "init"));
  for (const slug of SLUGS) {
    await ok(tenantsCli({ databaseUrl: urlB }, "create", slug, "--name", slug, "--host", `${slug}.example.com`));
  }
  const clientB = await connectTo(urlB);

  // The upgraded tenants kept their schemas, now in the registry; the fresh ones got keys.
  expect((await clientA.query("SELECT schema_name, released_at FROM shared.tenant_schemas ORDER BY 1")).rows).toEqual([
    { schema_name: "tenant_acme", released_at: null },
    { schema_name: "tenant_globex", released_at: null },
  ]);
  const schemasA = Object.fromEntries(await Promise.all(SLUGS.map(async (s) => [s, await schemaOf(clientA, s)] as const)));
  const schemasB = Object.fromEntries(await Promise.all(SLUGS.map(async (s) => [s, await schemaOf(clientB, s)] as const)));
  expect(schemasA).toEqual({ acme: "tenant_acme", globex: "tenant_globex" });
  for (const s of SLUGS) expect(schemasB[s]).toMatch(/^tenant_[a-z2-7]{12}$/);

  const others = (schemas: string[], tenants: Record<string, string>) => schemas.filter((n) => !Object.values(tenants).includes(n));
  expect(others(await userSchemas(clientA), schemasA)).toEqual(others(await userSchemas(clientB), schemasB));
  const diff: string[] = [];
  diff.push(...diffCatalogs("shared", await schemaCatalog(clientA, "shared"), await schemaCatalog(clientB, "shared"), ["upgraded", "fresh"]));
  for (const slug of SLUGS) {
    const a = await tenantSchemaCatalog(clientA, schemasA[slug]!);
    const b = await tenantSchemaCatalog(clientB, schemasB[slug]!);
    diff.push(...diffCatalogs(`tenant ${slug}`, a, b, ["upgraded", "fresh"]));
  }
  const publicA = await publicObjects(clientA);
  const publicB = await publicObjects(clientB);
  for (const o of publicA.filter((x) => !publicB.includes(x))) diff.push(`public: only in upgraded: ${o}`);
  for (const o of publicB.filter((x) => !publicA.includes(x))) diff.push(`public: only in fresh: ${o}`);
  expect(diff.join("\n"), `catalog drift between upgraded and fresh databases:\n${diff.join("\n")}`).toBe("");

  // Sanity: the comparison covered real content.
  const acme = await schemaCatalog(clientB, schemasB.acme!);
  const s = schemasB.acme!;
  expect(acme.enums).toEqual(["item_status (draft, published, archived)", "user_role (member, admin)"]);
  expect(acme.columns).toContain(`items.status ${s}.item_status udt=${s}.item_status NOT NULL DEFAULT 'draft'::${s}.item_status`);
  expect(acme.indexes.length).toBeGreaterThanOrEqual(3);
  expect(acme.constraints.some((c) => c.includes(`FOREIGN KEY (owner_id) REFERENCES ${s}.users(id) ON DELETE CASCADE`))).toBe(true);

  // Both ledgers record the same files with the same checksums, each once per tenant.
  const entries = async (c: typeof clientA, schemas: Record<string, string>) => {
    const slugOf = new Map(Object.entries(schemas).map(([slug, schema]) => [schema, slug]));
    return (await ledger(c)).map((r) => `${slugOf.get(r.schema_name) ?? r.schema_name} ${r.track} ${r.migration} ${r.checksum}`).sort();
  };
  expect(await entries(clientA, schemasA)).toEqual(await entries(clientB, schemasB));

  // And a second upgrade run finds nothing to do.
  const again = await ok(migrateCli({ databaseUrl: urlA }));
  expect(again.stdout).toMatch(/^Nothing to migrate: shared and 2 tenant\(s\) at head\./);

  // The upgraded database assigns keys to new tenants, and never a legacy name again.
  await ok(tenantsCli({ databaseUrl: urlA }, "delete", "acme", "--now", "--yes"));
  const reborn = JSON.parse((await ok(tenantsCli({ databaseUrl: urlA }, "create", "acme", "--name", "acme", "--host", "acme2.example.com", "--json"))).stdout);
  expect(reborn.schema).toMatch(/^tenant_[a-z2-7]{12}$/);
  expect((await clientA.query("SELECT schema_name, released_at IS NOT NULL AS released FROM shared.tenant_schemas WHERE schema_name = 'tenant_acme'")).rows).toEqual([
    { schema_name: "tenant_acme", released: true },
  ]);
});
