// Setting up a database in-process (the same library functions the tenants CLI calls), for tests
// whose subject is something else: initialized, with tenants `<slug>` at `<slug>.example.com`.
import type pg from "pg";
import { createTenant, initDatabase } from "../../scripts/tenants/operations.ts";
import { migrationSet } from "./migrations.ts";

export async function initWithTenants(client: pg.Client, slugs: string[], migrationsDir?: string): Promise<void> {
  const migrations = migrationSet(migrationsDir);
  await initDatabase(client, migrations);
  for (const slug of slugs) {
    await createTenant(client, migrations, { slug, name: `${slug} Inc.`, hosts: [`${slug}.example.com`] });
  }
}
