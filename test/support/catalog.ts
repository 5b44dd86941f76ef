// What the lifecycle tests compare: a schema's catalog (tables, columns, types, constraints,
// indexes, enums, ...), the objects in `public`, and the state a refused command must not change.
import type pg from "pg";

export interface SchemaCatalog {
  relations: string[];
  columns: string[];
  constraints: string[];
  indexes: string[];
  enums: string[];
  sequences: string[];
  types: string[];
  functions: string[];
  triggers: string[];
}

const CATALOG_QUERIES: Record<keyof SchemaCatalog, string> = {
  relations: `
    SELECT c.relname || ' kind=' || c.relkind::text || ' persistence=' || c.relpersistence::text AS row
    FROM pg_class c WHERE c.relnamespace = $1::regnamespace ORDER BY c.relname`,
  // Per table in column order (dropped columns left out): name, type, the type's schema-qualified
  // name, nullability, default, identity and generation.
  columns: `
    SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
           || ' udt=' || tn.nspname || '.' || t.typname
           || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE ' NULL' END
           || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
           || CASE WHEN a.attidentity::text <> '' THEN ' IDENTITY ' || a.attidentity::text ELSE '' END
           || CASE WHEN a.attgenerated::text <> '' THEN ' GENERATED ' || a.attgenerated::text ELSE '' END AS row
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_type t ON t.oid = a.atttypid
    JOIN pg_namespace tn ON tn.oid = t.typnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY c.relname, a.attnum`,
  constraints: `
    SELECT coalesce(rel.relname, '-') || ' ' || con.conname || ' ' || con.contype::text || ': '
           || pg_get_constraintdef(con.oid) AS row
    FROM pg_constraint con LEFT JOIN pg_class rel ON rel.oid = con.conrelid
    WHERE con.connamespace = $1::regnamespace ORDER BY rel.relname, con.conname`,
  indexes: `
    SELECT i.relname || ': ' || pg_get_indexdef(i.oid) AS row
    FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
    WHERE i.relnamespace = $1::regnamespace ORDER BY i.relname`,
  enums: `
    SELECT t.typname || ' (' || string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder) || ')' AS row
    FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
    WHERE t.typnamespace = $1::regnamespace GROUP BY t.typname ORDER BY t.typname`,
  sequences: `
    SELECT c.relname || ' ' || format_type(s.seqtypid, NULL) || ' start=' || s.seqstart || ' inc=' || s.seqincrement
           || ' min=' || s.seqmin || ' max=' || s.seqmax || ' cache=' || s.seqcache || ' cycle=' || s.seqcycle AS row
    FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
    WHERE c.relnamespace = $1::regnamespace ORDER BY c.relname`,
  types: `
    SELECT t.typname || ' typtype=' || t.typtype::text AS row
    FROM pg_type t WHERE t.typnamespace = $1::regnamespace ORDER BY t.typname`,
  functions: `
    SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS row
    FROM pg_proc p WHERE p.pronamespace = $1::regnamespace ORDER BY 1`,
  triggers: `
    SELECT pg_get_triggerdef(tg.oid) AS row
    FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
    WHERE c.relnamespace = $1::regnamespace AND NOT tg.tgisinternal ORDER BY 1`,
};

export async function schemaCatalog(client: pg.Client, schema: string): Promise<SchemaCatalog> {
  const catalog = {} as SchemaCatalog;
  for (const [key, sql] of Object.entries(CATALOG_QUERIES) as Array<[keyof SchemaCatalog, string]>) {
    catalog[key] = (await client.query<{ row: string }>(sql, [schema])).rows.map((r) => r.row);
  }
  return catalog;
}

/**
 * A tenant schema's catalog with its own name replaced by `tenant`, so that two tenants' schemas
 * (named by random keys) can be compared.
 */
export async function tenantSchemaCatalog(client: pg.Client, schema: string): Promise<SchemaCatalog> {
  const catalog = await schemaCatalog(client, schema);
  for (const key of Object.keys(catalog) as Array<keyof SchemaCatalog>) {
    catalog[key] = catalog[key].map((row) => row.split(schema).join("tenant"));
  }
  return catalog;
}

/** Human-readable differences between two catalogs (empty when equal). */
export function diffCatalogs(label: string, a: SchemaCatalog, b: SchemaCatalog, names = ["A", "B"]): string[] {
  const lines: string[] = [];
  for (const key of Object.keys(CATALOG_QUERIES) as Array<keyof SchemaCatalog>) {
    const onlyA = a[key].filter((row) => !b[key].includes(row));
    const onlyB = b[key].filter((row) => !a[key].includes(row));
    for (const row of onlyA) lines.push(`${label} ${key}: only in ${names[0]}: ${row}`);
    for (const row of onlyB) lines.push(`${label} ${key}: only in ${names[1]}: ${row}`);
    if (!onlyA.length && !onlyB.length && JSON.stringify(a[key]) !== JSON.stringify(b[key])) {
      lines.push(`${label} ${key}: same rows in another order:\n  ${names[0]}: ${a[key].join(" | ")}\n  ${names[1]}: ${b[key].join(" | ")}`);
    }
  }
  return lines;
}

/** Every object in schema `public`, as `<catalog> <name>`. */
export async function publicObjects(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ row: string }>(`
    WITH ns AS (SELECT 'public'::regnamespace AS oid)
    SELECT 'pg_class ' || relname || ' (' || relkind::text || ')' AS row FROM pg_class, ns WHERE relnamespace = ns.oid
    UNION ALL SELECT 'pg_type ' || typname FROM pg_type, ns WHERE typnamespace = ns.oid
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

/** Schemas other than PostgreSQL's own. */
export async function userSchemas(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ nspname: string }>(
    `SELECT nspname FROM pg_namespace
     WHERE nspname NOT LIKE 'pg\\_%' ESCAPE '\\' AND nspname <> 'information_schema' ORDER BY nspname`,
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
