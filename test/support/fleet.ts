// Setting up a database in-process (the same library functions the tenants CLI calls), for tests
// whose subject is something else: initialized, with tenants `<slug>` at `<slug>.example.com`.
// Schema names are assigned at creation: use the map this returns (slug -> schema), or
// `schemaOf`, never `tenant_<slug>`.
import type pg from "pg";
import { migrationSql } from "../../scripts/migrations/files.ts";
import { recordSql } from "../../scripts/migrations/ledger.ts";
import { createTenant, initDatabase } from "../../scripts/tenants/operations.ts";
import { migrationSet } from "./migrations.ts";

export async function initWithTenants(client: pg.Client, slugs: string[], migrationsDir?: string): Promise<Record<string, string>> {
  const migrations = migrationSet(migrationsDir);
  await initDatabase(client, migrations);
  const schemas: Record<string, string> = {};
  for (const slug of slugs) {
    const tenant = await createTenant(client, migrations, { slug, name: `${slug} Inc.`, hosts: [`${slug}.example.com`] });
    schemas[slug] = tenant.schema;
  }
  return schemas;
}

/** A tenant's schema, from the catalog. */
export async function schemaOf(client: pg.Client, slug: string): Promise<string> {
  const { rows } = await client.query<{ schema_name: string }>("SELECT schema_name FROM shared.tenants WHERE slug = $1", [slug]);
  if (!rows[0]) throw new Error(`no tenant ${slug} in the catalog`);
  return rows[0].schema_name;
}

/**
 * A tenant made the way the code did before schema names were keys (schema `tenant_<slug>`, no
 * registry row), on a database at the migrations of `migrationsDir`: for upgrade tests. It uses the
 * project's own migration and ledger SQL, in one transaction.
 */
export async function createLegacyTenant(client: pg.Client, slug: string, migrationsDir: string): Promise<string> {
  const migrations = migrationSet(migrationsDir);
  const schema = `tenant_${slug}`;
  await client.query("BEGIN");
  try {
    const { rows } = await client.query<{ id: number }>(
      "INSERT INTO shared.tenants (slug, name, schema_name) VALUES ($1, $1, $2) RETURNING id::int",
      [slug, schema],
    );
    await client.query("INSERT INTO shared.tenant_hosts (host, tenant_id, is_primary) VALUES ($1, $2, true)", [
      `${slug}.example.com`,
      rows[0]!.id,
    ]);
    await client.query(`CREATE SCHEMA "${schema}"`);
    for (const m of migrations.tenant) await client.query(migrationSql(m, schema));
    await client.query(recordSql(client, migrations.tenant.map((migration) => ({ schema, migration }))));
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK");
    throw error;
  }
  return schema;
}
