// For the placement tests on Citus: tenant schemas made distributed, and a tenant's rows read whole
// (to compare before and after a move).
import type pg from "pg";

/**
 * Makes every tenant schema that is not yet a Citus distributed schema one
 * (citus_schema_distribute): for databases where `tenants create` leaves schemas local to the
 * coordinator. Returns the schemas it distributed.
 */
export async function distributeTenantSchemas(client: pg.ClientBase): Promise<string[]> {
  const { rows } = await client.query<{ schema: string }>(
    `SELECT n.nspname AS schema FROM pg_namespace n
     WHERE n.nspname LIKE 'tenant\\_%' ESCAPE '\\' AND NOT EXISTS (SELECT 1 FROM pg_dist_schema d WHERE d.schemaid = n.oid)
     ORDER BY 1`,
  );
  for (const { schema } of rows) await client.query("SELECT citus_schema_distribute($1::regnamespace)", [schema]);
  return rows.map((r) => r.schema);
}

export interface TenantRows {
  users: Array<{ id: number; email: string }>;
  items: Array<{ id: number; title: string; owner_id: number }>;
}

/** Every user and item of a tenant, in id order. */
export async function tenantRows(client: pg.ClientBase, schema: string): Promise<TenantRows> {
  const users = await client.query<{ id: number; email: string }>(`SELECT id, email FROM "${schema}".users ORDER BY id`);
  const items = await client.query<{ id: number; title: string; owner_id: number }>(`SELECT id, title, owner_id FROM "${schema}".items ORDER BY id`);
  return { users: users.rows, items: items.rows };
}
