// What the lifecycle tests compare: a schema's catalog (tables, columns, types, constraints,
// indexes, enums, ...; the implementation `tenants adopt` uses too, in scripts/db/catalog.ts), the
// objects in `public`, and the state a refused command must not change.
import type pg from "pg";

export {
  catalogWithout,
  diffCatalogs,
  ownedSchemaCatalog,
  schemaCatalog,
  tenantSchemaCatalog,
  type SchemaCatalog,
} from "../../scripts/db/catalog.ts";

/**
 * Every object in schema `public`, as `<catalog> <name>`, except an installed extension's own
 * (Citus puts its views citus_tables and citus_schemas there: they are not the project's).
 */
export async function publicObjects(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ row: string }>(`
    WITH ns AS (SELECT 'public'::regnamespace AS oid)
    SELECT 'pg_class ' || relname || ' (' || relkind::text || ')' AS row FROM pg_class, ns WHERE relnamespace = ns.oid
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = pg_class.oid AND d.deptype = 'e')
    UNION ALL SELECT 'pg_type ' || typname FROM pg_type, ns WHERE typnamespace = ns.oid
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = pg_type.typrelid AND d.deptype = 'e')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_type e ON d.objid = e.typrelid
                      WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e' AND e.oid = pg_type.typelem)
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = pg_type.oid AND d.deptype = 'e')
    UNION ALL SELECT 'pg_proc ' || proname FROM pg_proc, ns WHERE pronamespace = ns.oid
    UNION ALL SELECT 'pg_constraint ' || conname || ' on ' || coalesce(conrelid::regclass::text, '-')
              FROM pg_constraint, ns WHERE connamespace = ns.oid
    UNION ALL SELECT 'pg_operator ' || oprname FROM pg_operator, ns WHERE oprnamespace = ns.oid
    UNION ALL SELECT 'pg_collation ' || collname FROM pg_collation, ns WHERE collnamespace = ns.oid
    UNION ALL SELECT 'pg_conversion ' || conname FROM pg_conversion, ns WHERE connamespace = ns.oid
    UNION ALL SELECT 'pg_opclass ' || opcname FROM pg_opclass, ns WHERE opcnamespace = ns.oid
    UNION ALL SELECT 'pg_opfamily ' || opfname FROM pg_opfamily, ns WHERE opfnamespace = ns.oid
    UNION ALL SELECT 'pg_ts_config ' || cfgname FROM pg_ts_config, ns WHERE cfgnamespace = ns.oid
    UNION ALL SELECT 'pg_ts_dict ' || dictname FROM pg_ts_dict, ns WHERE dictnamespace = ns.oid
    UNION ALL SELECT 'pg_statistic_ext ' || stxname FROM pg_statistic_ext, ns WHERE stxnamespace = ns.oid
    UNION ALL SELECT 'pg_extension ' || extname FROM pg_extension, ns WHERE extnamespace = ns.oid
    ORDER BY 1`);
  return rows.map((r) => r.row);
}

/** Schemas other than PostgreSQL's own and an installed extension's (Citus: citus, citus_internal). */
export async function userSchemas(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ nspname: string }>(
    `SELECT nspname FROM pg_namespace
     WHERE nspname NOT LIKE 'pg\\_%' ESCAPE '\\' AND nspname <> 'information_schema'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = pg_namespace.oid AND d.deptype = 'e')
     ORDER BY nspname`,
  );
  return rows.map((r) => r.nspname);
}

export async function relationExists(client: pg.Client, qualified: string): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>("SELECT to_regclass($1) IS NOT NULL AS ok", [qualified]);
  return rows[0]!.ok;
}

export interface LedgerRow {
  schema_name: string;
  track: string;
  migration: string;
  checksum: string;
  applied_at: string;
}

/** The migration ledger, ordered; empty when it does not exist. */
export async function ledger(client: pg.Client): Promise<LedgerRow[]> {
  if (!(await relationExists(client, "public.schema_migrations"))) return [];
  const { rows } = await client.query<LedgerRow>(
    `SELECT schema_name, track, migration, checksum, applied_at::text AS applied_at
     FROM public.schema_migrations ORDER BY schema_name, migration`,
  );
  return rows;
}

/** Whether `schema.table` has `column`. */
export async function hasColumn(client: pg.Client, schema: string, table: string, column: string): Promise<boolean> {
  const { rowCount } = await client.query(
    "SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 AND column_name = $3",
    [schema, table, column],
  );
  return rowCount === 1;
}

/**
 * Everything a tenant command or a migration run may change: the schemas and the number of objects
 * in each, the catalog rows (with timestamps) and the ledger. Equal before and after = nothing changed.
 */
export async function databaseState(client: pg.Client) {
  const objects = (
    await client.query<{ row: string }>(
      `SELECT n.nspname || ': ' || count(c.oid) || ' relations, '
              || (SELECT count(*) FROM pg_type t WHERE t.typnamespace = n.oid) || ' types' AS row
       FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid
       WHERE n.nspname NOT LIKE 'pg\\_%' ESCAPE '\\' AND n.nspname <> 'information_schema'
       GROUP BY n.oid, n.nspname ORDER BY n.nspname`,
    )
  ).rows.map((r) => r.row);
  const rowsOf = async (qualified: string, order: string) =>
    (await relationExists(client, qualified))
      ? (await client.query(`SELECT row_to_json(x)::text AS row FROM ${qualified} x ORDER BY ${order}`)).rows.map((r) => r.row as string)
      : undefined;
  return {
    objects,
    tenants: await rowsOf("shared.tenants", "id"),
    hosts: await rowsOf("shared.tenant_hosts", "host"),
    schemaRegistry: await rowsOf("shared.tenant_schemas", "schema_name"),
    releasedHosts: await rowsOf("shared.released_hosts", "host"),
    ledger: await ledger(client),
  };
}
