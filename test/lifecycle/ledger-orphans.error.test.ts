// Ledger rows left by a tenant removed by hand (not with `delete`) must not make a behind tenant
// look up to date.
import { afterAll, describe, expect, it } from "vitest";
import { connectTo, dropTestDatabases, freshDatabase, migrateCli, tenantsCli } from "../support/database.ts";
import { initWithTenants } from "../support/fleet.ts";
import { checkoutTags } from "../support/migrations.ts";

afterAll(dropTestDatabases);

describe("a tenant removed by hand", () => {
  it("leaves ledger rows that do not hide another tenant being behind", async () => {
    const databaseUrl = await freshDatabase("orphans");
    const client = await connectTo(databaseUrl);
    const head = checkoutTags("tenant").at(-1)!;
    try {
      const schemas = await initWithTenants(client, ["alpha", "beta"]);
      // alpha loses its record of the head migration (as if it never got it) ...
      await client.query("DELETE FROM public.schema_migrations WHERE schema_name = $1 AND migration = $2", [schemas.alpha, head]);
      // ... and beta is removed by hand: its catalog row and schema go, its ledger rows stay.
      await client.query(`DROP SCHEMA "${schemas.beta}" CASCADE`);
      await client.query("DELETE FROM shared.tenants WHERE slug = 'beta'");
    } finally {
      await client.end();
    }

    const create = await tenantsCli({ databaseUrl }, "create", "gamma", "--name", "Gamma", "--host", "gamma.example.com");
    expect(create.code).toBe(1);
    expect(create.stderr).toContain(`not at head (pending: tenant/${head})`);

    const status = await migrateCli({ databaseUrl }, "status", "--json");
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout).tenant.behind).toEqual(["alpha"]);
  });
});
