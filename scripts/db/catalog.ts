// A schema's catalog as comparable text rows (tables, columns, types, constraints, indexes, enums,
// sequences, functions, triggers): what the drift test compares between an upgraded and a fresh
// database, and what `tenants adopt` compares between an app's tables and the tenant track. One
// implementation for both, so "matches" means the same thing in each.
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

export const CATALOG_KEYS = [
  "relations",
  "columns",
  "constraints",
  "indexes",
  "enums",
  "sequences",
  "types",
  "functions",
  "triggers",
] as const satisfies ReadonlyArray<keyof SchemaCatalog>;

// Each query returns `row` (what is compared) and `owner` (the object the row belongs to:
// `relation:<name>`, `type:<name>`, `function:<name>` or `trigger:<name>`), so that the rows of
// named objects can be left out of a comparison (catalogWithout).
const CATALOG_QUERIES: Record<keyof SchemaCatalog, string> = {
  relations: `
    SELECT c.relname || ' kind=' || c.relkind::text || ' persistence=' || c.relpersistence::text AS row,
           'relation:' || c.relname AS owner
    FROM pg_class c WHERE c.relnamespace = $1::regnamespace ORDER BY c.relname`,
  // Per table in column order (dropped columns left out): name, type, the type's schema-qualified
  // name, nullability, default, identity and generation.
  columns: `
    SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
           || ' udt=' || tn.nspname || '.' || t.typname
           || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE ' NULL' END
           || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
           || CASE WHEN a.attidentity::text <> '' THEN ' IDENTITY ' || a.attidentity::text ELSE '' END
           || CASE WHEN a.attgenerated::text <> '' THEN ' GENERATED ' || a.attgenerated::text ELSE '' END AS row,
           'relation:' || c.relname AS owner
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
           || pg_get_constraintdef(con.oid) AS row,
           coalesce('relation:' || rel.relname, 'type:' || (SELECT typname FROM pg_type WHERE oid = con.contypid)) AS owner
    FROM pg_constraint con LEFT JOIN pg_class rel ON rel.oid = con.conrelid
    WHERE con.connamespace = $1::regnamespace ORDER BY rel.relname, con.conname`,
  indexes: `
    SELECT i.relname || ': ' || pg_get_indexdef(i.oid) AS row, 'relation:' || t.relname AS owner
    FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
    WHERE i.relnamespace = $1::regnamespace ORDER BY i.relname`,
  enums: `
    SELECT t.typname || ' (' || string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder) || ')' AS row,
           'type:' || t.typname AS owner
    FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
    WHERE t.typnamespace = $1::regnamespace GROUP BY t.typname ORDER BY t.typname`,
  sequences: `
    SELECT c.relname || ' ' || format_type(s.seqtypid, NULL) || ' start=' || s.seqstart || ' inc=' || s.seqincrement
           || ' min=' || s.seqmin || ' max=' || s.seqmax || ' cache=' || s.seqcache || ' cycle=' || s.seqcycle AS row,
           'relation:' || c.relname AS owner
    FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
    WHERE c.relnamespace = $1::regnamespace ORDER BY c.relname`,
  // A table's or view's row type (and its array type) belongs to the relation; other types to themselves.
  types: `
    SELECT t.typname || ' typtype=' || t.typtype::text AS row,
           coalesce('relation:' || rc.relname, 'relation:' || ec.relname, 'type:' || et.typname, 'type:' || t.typname) AS owner
    FROM pg_type t
    LEFT JOIN pg_class rc ON rc.oid = t.typrelid
    LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
    LEFT JOIN pg_class ec ON ec.oid = et.typrelid
    WHERE t.typnamespace = $1::regnamespace ORDER BY t.typname`,
  functions: `
    SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS row, 'function:' || p.proname AS owner
    FROM pg_proc p WHERE p.pronamespace = $1::regnamespace ORDER BY 1`,
  triggers: `
    SELECT pg_get_triggerdef(tg.oid) AS row, 'trigger:' || tg.tgname AS owner
    FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
    WHERE c.relnamespace = $1::regnamespace AND NOT tg.tgisinternal ORDER BY 1`,
};

/** The catalog rows of a schema, each with the object it belongs to. */
export type OwnedCatalog = Record<keyof SchemaCatalog, Array<{ row: string; owner: string }>>;

export async function ownedSchemaCatalog(client: pg.ClientBase, schema: string): Promise<OwnedCatalog> {
  const catalog = {} as OwnedCatalog;
  for (const key of CATALOG_KEYS) {
    catalog[key] = (await client.query<{ row: string; owner: string }>(CATALOG_QUERIES[key], [schema])).rows;
  }
  return catalog;
}

/** `catalog`'s rows, leaving out those that belong to `owners` (e.g. `relation:published_items`). */
export function catalogWithout(catalog: OwnedCatalog, owners: Iterable<string> = []): SchemaCatalog {
  const skip = new Set(owners);
  const result = {} as SchemaCatalog;
  for (const key of CATALOG_KEYS) result[key] = catalog[key].filter((r) => !skip.has(r.owner)).map((r) => r.row);
  return result;
}

export async function schemaCatalog(client: pg.ClientBase, schema: string): Promise<SchemaCatalog> {
  return catalogWithout(await ownedSchemaCatalog(client, schema));
}

/** A catalog with `schema`'s own name replaced by `tenant`, so that two tenants' schemas (named by random keys) compare. */
export function renameSchemaInCatalog<C extends SchemaCatalog | OwnedCatalog>(catalog: C, schema: string): C {
  const result = {} as Record<string, unknown>;
  for (const key of CATALOG_KEYS) {
    result[key] = (catalog[key] as Array<string | { row: string; owner: string }>).map((r) =>
      typeof r === "string" ? r.split(schema).join("tenant") : { ...r, row: r.row.split(schema).join("tenant") },
    );
  }
  return result as C;
}

/**
 * A tenant schema's catalog with its own name replaced by `tenant`, so that two tenants' schemas
 * (named by random keys) can be compared.
 */
export async function tenantSchemaCatalog(client: pg.ClientBase, schema: string): Promise<SchemaCatalog> {
  return renameSchemaInCatalog(await schemaCatalog(client, schema), schema);
}

/** Human-readable differences between two catalogs (empty when equal). */
export function diffCatalogs(label: string, a: SchemaCatalog, b: SchemaCatalog, names = ["A", "B"]): string[] {
  const lines: string[] = [];
  for (const key of CATALOG_KEYS) {
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
