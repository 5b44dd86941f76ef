// The tenant-bound client can only be made from a resolved tenant, and reaches only the tenant's
// tables. The compile-time half is checked by `npm run typecheck` (this file is in tsconfig.json):
// each @ts-expect-error line must fail to compile, or the typecheck fails. The runtime half runs
// inside workerd.
import { env } from "cloudflare:workers";
import { describe, expect, expectTypeOf, it } from "vitest";
import { bindTenant, type TenantDatabase } from "../../src/db/client.ts";
import { tenantHosts, tenants } from "../../src/db/schema/shared.ts";
import { WorkerConfigSchema, type AppEnv } from "../../src/env.ts";
import { fixedTenant, type ResolvedTenant, type TenantRecord } from "../../src/tenancy/resolve.ts";
import { schemaOf } from "./helpers.ts";

/** Never called: only compiled. */
export function compileOnly(db: TenantDatabase, config: AppEnv["Variables"]["config"], record: TenantRecord) {
  // @ts-expect-error a schema name is not a resolved tenant
  bindTenant(config, "tenant_abcdefghijkl");
  // @ts-expect-error nor is a record with the same fields that the tenancy module did not resolve
  bindTenant(config, record);
  // @ts-expect-error nor an object literal
  bindTenant(config, { id: 1, slug: "acme", name: "Acme", schema: "tenant_acme", status: "active" });

  // @ts-expect-error the catalog is not in the relational API of c.var.db
  void db.query.tenants;
  // @ts-expect-error nor the hosts
  void db.query.tenantHosts;
  // @ts-expect-error the catalog's tables cannot be selected from
  void db.select().from(tenants);
  // @ts-expect-error ... with chosen columns either
  void db.select({ host: tenantHosts.host }).from(tenantHosts);
  // @ts-expect-error ... nor written
  void db.insert(tenantHosts);
  // @ts-expect-error ... nor updated
  void db.update(tenants);
  // @ts-expect-error ... nor deleted
  void db.delete(tenants);
  // @ts-expect-error no raw SQL either
  void db.execute;

  expectTypeOf<AppEnv["Variables"]["db"]>().toEqualTypeOf<TenantDatabase>();
  expectTypeOf<AppEnv["Variables"]["tenant"]>().toEqualTypeOf<ResolvedTenant>();
  expectTypeOf(db.query).toHaveProperty("users");
  expectTypeOf(db.query).toHaveProperty("items");
}

describe("the tenant-bound client", () => {
  it("knows only the tenant's tables at run time too", async () => {
    const config = WorkerConfigSchema.parse(env);
    const { db, tables } = bindTenant(config, fixedTenant(await schemaOf("acme")));
    expect(Object.keys(db.query).sort()).toEqual(["items", "users"]);
    expect(Object.keys(tables).sort()).toEqual(["itemStatus", "items", "itemsRelations", "userRole", "users", "usersRelations"]);
  });

  it("refuses to bind a schema name outside the strict pattern", () => {
    for (const bad of ["public", "shared", "pg_catalog", 'tenant_a"b', "tenant_", "TENANT_X"]) {
      expect(() => fixedTenant(bad), bad).toThrow(/not a tenant schema name/);
    }
  });
});
