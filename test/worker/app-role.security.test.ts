// The Worker's own connection (DATABASE_URL, through the local endpoint and the real driver) is the
// app role: it reads the catalog and uses tenant tables, and an injected statement can change
// neither the schema nor the catalog, nor read the migration ledger. Every other Worker test runs
// on this same connection, so they show that every route works with the app role's grants.
import { neon, neonConfig, type NeonQueryFunction } from "@neondatabase/serverless";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { adminToken, request } from "./helpers.ts";

function workerSql(): NeonQueryFunction<false, false> {
  neonConfig.fetchEndpoint = () => env.LOCAL_SQL_ENDPOINT!;
  return neon(env.DATABASE_URL!);
}

async function sqlstate(statement: string): Promise<string> {
  try {
    await workerSql().query(statement);
  } catch (error) {
    return (error as { code?: string }).code ?? `no SQLSTATE: ${(error as Error).message}`;
  }
  return "succeeded";
}

describe("the Worker's database role", () => {
  it("is the app role: not the owner, not a superuser, no BYPASSRLS", async () => {
    const [me] = await workerSql().query(
      `SELECT current_user AS role, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls,
              (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()) AS database_owner
       FROM pg_roles r WHERE r.rolname = current_user`,
    );
    expect(me).toEqual({ role: "edge_tenants_app", superuser: false, bypassrls: false, database_owner: expect.any(String) });
    expect(me!.database_owner).not.toBe("edge_tenants_app");
  });

  it("reads the catalog, and cannot drop, create or alter anything, write the catalog or read the ledger", async () => {
    const sql = workerSql();
    const [api] = await sql.query("SELECT schema_name FROM shared.tenants WHERE slug = 'api'");
    const s = `"${api!.schema_name}"`;
    expect(await sql.query("SELECT host FROM shared.tenant_hosts WHERE host = 'api.test'")).toEqual([{ host: "api.test" }]);

    const statements = [
      `DROP SCHEMA ${s} CASCADE`,
      `DROP TABLE ${s}.users CASCADE`,
      `ALTER TABLE ${s}.users ADD COLUMN evil integer`,
      `ALTER TABLE ${s}.items DROP COLUMN title`,
      `CREATE TABLE ${s}.evil (x integer)`,
      `TRUNCATE ${s}.users CASCADE`,
      "CREATE SCHEMA evil",
      "CREATE TABLE public.evil (x integer)",
      "CREATE TABLE shared.evil (x integer)",
      "DROP TABLE shared.tenants CASCADE",
      "SELECT * FROM public.schema_migrations",
      "UPDATE shared.tenants SET status = 'active'",
      "DELETE FROM shared.tenant_hosts",
      // Sign-up inserts a tenant's slug, name and schema only: never its status or tier.
      "INSERT INTO shared.tenants (slug, name, schema_name, status) VALUES ('evil', 'Evil', 'tenant_evil', 'active')",
      "UPDATE shared.tenant_schemas SET released_at = NULL",
      "DELETE FROM shared.tenant_pool",
    ];
    const outcomes: Record<string, string> = {};
    for (const statement of statements) outcomes[statement] = await sqlstate(statement);
    expect(outcomes).toEqual(Object.fromEntries(statements.map((st) => [st, "42501"]))); // insufficient_privilege

    // Nothing was touched: the tenant still serves.
    const res = await request("api.test", { token: await adminToken("api.test"), path: "/users" });
    expect(res.status).toBe(200);
  });

  it("sees no shared table but the two catalog tables the request path reads, and those sign-up claims a pool slot with", async () => {
    const rows = await workerSql().query(
      `SELECT c.relname FROM pg_class c
       WHERE c.relnamespace = 'shared'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
         AND (has_table_privilege(c.oid, 'SELECT') OR has_table_privilege(c.oid, 'INSERT')
              OR has_table_privilege(c.oid, 'UPDATE') OR has_table_privilege(c.oid, 'DELETE'))
       ORDER BY 1`,
    );
    // The catalog tables, and those sign-up claims a warm-pool slot with (released_hosts: read only).
    expect(rows.map((r) => r.relname)).toEqual(["released_hosts", "tenant_hosts", "tenant_pool", "tenant_schemas", "tenants"]);
  });
});
