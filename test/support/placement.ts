// For the placement tests on Citus: a tenant's rows read whole (to compare before and after a move).
import type pg from "pg";

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
