// What a role may do in a database, read from PostgreSQL's own privilege checks (has_*_privilege,
// so grants through PUBLIC count), and what the app role should be allowed: for the role tests.
import type pg from "pg";

const TABLE_PRIVILEGES = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"];

/**
 * One line per object the role has any privilege on, outside PostgreSQL's own schemas and an
 * installed extension's own objects (Citus's schemas and views, which it opens to PUBLIC):
 * `schema shared: USAGE`, `table tenant_x.items: DELETE,INSERT,SELECT,UPDATE`,
 * `sequence tenant_x.items_id_seq: SELECT,USAGE`, `type tenant_x.item_status: USAGE`.
 */
export async function rolePrivileges(client: pg.Client, role: string): Promise<string[]> {
  const { rows } = await client.query<{ line: string }>(
    `WITH ns AS (
       SELECT oid, nspname FROM pg_namespace
       WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND nspname NOT LIKE 'pg\\_%' ESCAPE '\\'
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = pg_namespace.oid AND d.deptype = 'e')
     )
     SELECT line FROM (
       SELECT 'schema ' || nspname || ': ' || string_agg(p, ',' ORDER BY p) AS line
       FROM ns, unnest(ARRAY['USAGE', 'CREATE']) p WHERE has_schema_privilege($1, ns.oid, p) GROUP BY nspname
       UNION ALL
       SELECT 'table ' || nspname || '.' || c.relname || ': ' || string_agg(p, ',' ORDER BY p)
       FROM pg_class c JOIN ns ON ns.oid = c.relnamespace, unnest($2::text[]) p
       WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND has_table_privilege($1, c.oid, p)
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
       GROUP BY nspname, c.relname
       UNION ALL
       SELECT 'sequence ' || nspname || '.' || c.relname || ': ' || string_agg(p, ',' ORDER BY p)
       FROM pg_class c JOIN ns ON ns.oid = c.relnamespace, unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) p
       WHERE c.relkind = 'S' AND has_sequence_privilege($1, c.oid, p) GROUP BY nspname, c.relname
       UNION ALL
       SELECT 'type ' || nspname || '.' || t.typname || ': USAGE'
       FROM pg_type t JOIN ns ON ns.oid = t.typnamespace
       WHERE t.typtype IN ('e', 'd', 'r', 'm') AND has_type_privilege($1, t.oid, 'USAGE')
     ) x ORDER BY line`,
    [role, TABLE_PRIVILEGES],
  );
  return rows.map((r) => r.line);
}

/** What the app role must have, derived from the catalog: nothing more, nothing less. */
export async function expectedAppPrivileges(client: pg.Client): Promise<string[]> {
  const { rows: schemas } = await client.query<{ schema: string }>("SELECT schema_name AS schema FROM shared.tenants");
  const lines = ["schema shared: USAGE", "table shared.tenant_hosts: SELECT", "table shared.tenants: SELECT"];
  // What sign-up reads to claim a warm-pool slot (its writes are column grants: see signupGrantSql).
  const { rows: pool } = await client.query<{ pool: boolean }>("SELECT to_regclass('shared.tenant_pool') IS NOT NULL AS pool");
  if (pool[0]!.pool) lines.push("table shared.released_hosts: SELECT", "table shared.tenant_pool: SELECT", "table shared.tenant_schemas: SELECT");
  for (const { schema } of schemas) {
    lines.push(`schema ${schema}: USAGE`);
    const { rows } = await client.query<{ kind: string; name: string }>(
      `SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END AS kind, c.relname AS name
       FROM pg_class c WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
       UNION ALL
       SELECT 'type', t.typname FROM pg_type t WHERE t.typnamespace = $1::regnamespace AND t.typtype IN ('e', 'd', 'r', 'm')`,
      [schema],
    );
    for (const { kind, name } of rows) {
      if (kind === "table") lines.push(`table ${schema}.${name}: DELETE,INSERT,SELECT,UPDATE`);
      if (kind === "sequence") lines.push(`sequence ${schema}.${name}: SELECT,USAGE`);
      if (kind === "type") lines.push(`type ${schema}.${name}: USAGE`);
    }
  }
  // Types anywhere else (e.g. enums in shared) are usable by PUBLIC by default: not the app role's grants.
  const { rows: publicTypes } = await client.query<{ line: string }>(
    `SELECT 'type ' || n.nspname || '.' || t.typname || ': USAGE' AS line
     FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE t.typtype IN ('e', 'd', 'r', 'm') AND n.nspname NOT LIKE 'tenant\\_%' ESCAPE '\\'
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND has_type_privilege('public', t.oid, 'USAGE')
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')`,
  );
  // Likewise USAGE on schema public (PostgreSQL 15+ grants it to PUBLIC; the schema holds only the ledger).
  const { rows: publicSchemas } = await client.query<{ line: string }>(
    `SELECT 'schema ' || nspname || ': USAGE' AS line FROM pg_namespace
     WHERE nspname = 'public' AND has_schema_privilege('public', oid, 'USAGE')`,
  );
  return [...lines, ...publicTypes.map((r) => r.line), ...publicSchemas.map((r) => r.line)].sort();
}

/** Role attributes that would give the role more than its grants. */
export async function roleAttributes(client: pg.Client, role: string) {
  const { rows } = await client.query<{
    login: boolean;
    superuser: boolean;
    bypassrls: boolean;
    createrole: boolean;
    createdb: boolean;
    memberOf: string[];
    owns: number;
  }>(
    `SELECT r.rolcanlogin AS login, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls,
            r.rolcreaterole AS createrole, r.rolcreatedb AS createdb,
            coalesce((SELECT array_agg(g.rolname::text) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                      WHERE m.member = r.oid), '{}') AS "memberOf",
            (SELECT count(*)::int FROM pg_shdepend d WHERE d.refobjid = r.oid AND d.deptype = 'o') AS owns
     FROM pg_roles r WHERE r.rolname = $1`,
    [role],
  );
  return rows[0];
}
