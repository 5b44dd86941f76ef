// `tenants adopt`: turn a single-tenant database (the app's tables in `public`, no catalog yet) into
// an edge-tenants database whose first tenant is that app's customer, without copying any data.
//
// 1. Inspect: every object in `public` and where it goes (the new tenant schema, `shared` for the
//    tables named with --shared, or nowhere, with the reason); what cannot move safely is refused.
// 2. Compare: inside the transaction, after the moves, the tenant schema's catalog is compared with
//    the tenant track applied to a scratch schema (rolled back to a savepoint) after each migration,
//    with the drift test's catalog introspection (scripts/db/catalog.ts). Views, functions and
//    triggers the track does not define are kept as the app's own; anything else must match.
// 3. Apply, in ONE transaction under the migration lock: the ledger and `shared` as init makes them,
//    a new schema tenant_<key> (registered like any tenant's), ALTER ... SET SCHEMA of every object
//    (no data is copied), the tenant and host rows, the ledger at the matched migration, and the app
//    role's grants as init applies them. Any error rolls all of it back.
// 4. Verify after commit: row counts and sequence values equal those read under the lock before.
import type pg from "pg";
import { hostError, newTenantSchemaName, normalizeHost, quoteIdent, slugError } from "../../src/tenancy/naming.ts";
import { catalogWithout, diffCatalogs, ownedSchemaCatalog, renameSchemaInCatalog, type OwnedCatalog, type SchemaCatalog } from "../db/catalog.ts";
import { applyAppRole, type AppGrantSummary, type AppRoleOptions } from "../db/roles.ts";
import { migrationSql, type Migration, type MigrationSet } from "../migrations/files.ts";
import { citusFor, referenceSharedTables } from "../db/citus.ts";
import { LEDGER_TABLE, ledgerExists, recordSql } from "../migrations/ledger.ts";
import {
  TenantCommandError,
  createCatalog,
  hostOwners,
  lockedTransaction,
  registerTenantSql,
  unusedSchemaName,
} from "./operations.ts";

export type Destination = "tenant" | "shared" | "none";

/** One object of `public` and where adopt puts it. */
export interface PlanObject {
  kind: string;
  name: string;
  to: Destination;
  /** Objects that move with their table (indexes, constraints, owned sequences, triggers, policies). */
  with?: string;
  /** Why it goes where it goes (always given for "none" and for the app's own objects). */
  note?: string;
  /** Tables: exact row count, read under the lock. */
  rows?: number;
}

export interface AdoptPlan {
  slug: string;
  name: string;
  hosts: string[];
  /** The new schema's name (random; a dry run draws one that is not kept). */
  schema: string;
  objects: PlanObject[];
  /** The tenant migration the tables match, or undefined when none does. */
  match?: { migration: string; head: boolean; pending: string[] };
  /** The closest migration and the differences, when none matches. */
  differences?: { migration: string; lines: string[] };
  /** Views, functions and triggers of the app that the tenant track does not define (kept in the tenant schema). */
  appObjects: string[];
}

export interface Verification {
  tables: Array<{ table: string; before: number; after: number }>;
  sequences: Array<{ sequence: string; before: string; after: string }>;
  ok: boolean;
}

export interface AdoptResult {
  plan: AdoptPlan;
  applied: boolean;
  grants?: AppGrantSummary;
  verification?: Verification;
  /** Milliseconds: the transaction (lock to commit), and the verification after it. */
  timings?: { transactionMs: number; verifyMs: number };
}

export interface AdoptInput extends AppRoleOptions {
  slug: string;
  name: string;
  hosts: string[];
  /** Tables of `public` that go to schema `shared` instead of the tenant's. */
  shared?: string[];
  dryRun?: boolean;
  /** lock_timeout while taking the app's tables (ms). */
  lockTimeoutMs?: number;
}

/** A refusal of adopt: one line, nothing changed; carries the plan so far (a dry run prints it). */
export class AdoptRefusal extends TenantCommandError {
  readonly plan?: AdoptPlan;
  constructor(message: string, plan?: AdoptPlan) {
    super(message);
    this.plan = plan;
  }
}

class DryRunDone extends Error {
  readonly plan: AdoptPlan;
  constructor(plan: AdoptPlan) {
    super("dry run");
    this.plan = plan;
  }
}

const DEFAULT_LOCK_TIMEOUT_MS = 5_000;
const WAIT_FOR_LOCK_MS = 10_000;

/** Checks the arguments (no I/O); returns the normalized hosts. */
export function checkAdoptInput(input: AdoptInput): string[] {
  const slugProblem = slugError(input.slug);
  if (slugProblem) throw new TenantCommandError(slugProblem);
  const name = input.name?.trim();
  if (!name) throw new TenantCommandError('the tenant needs a display name: --name "Acme Inc."');
  if (name.length > 200) throw new TenantCommandError("the display name is longer than 200 characters");
  if (input.hosts.length === 0) throw new TenantCommandError(`the tenant needs at least one host: --host ${input.slug}.example.com`);
  const hosts: string[] = [];
  for (const host of input.hosts) {
    const problem = hostError(host);
    if (problem) throw new TenantCommandError(problem);
    const n = normalizeHost(host)!;
    if (!hosts.includes(n)) hosts.push(n);
  }
  for (const table of input.shared ?? []) {
    if (!table) throw new TenantCommandError("--shared needs table names: --shared plans,countries");
  }
  return hosts;
}

// ---------------------------------------------------------------------------------------------
// Inspection

interface RelationRow {
  oid: number;
  name: string;
  relkind: string;
  owner: string;
  mine: boolean;
  extension: string | null;
  /** For sequences: the table whose column owns it (serial or identity). */
  owned_by: string | null;
  /** For indexes: their table. */
  index_of: string | null;
  /** For views and materialized views: the relations of `public` they read. */
  reads: string[];
}

interface TypeRow {
  name: string;
  typtype: string;
  owner: string;
  mine: boolean;
  extension: string | null;
  /** Tables of `public` with a column of this type (or an array of it). */
  used_by: string[];
}

interface FunctionRow {
  oid: number;
  name: string;
  schema: string;
  signature: string;
  prokind: string;
  language: string;
  body: string | null;
  atomic: boolean;
  config: string[] | null;
  owner: string;
  mine: boolean;
  extension: string | null;
  /** Tables whose triggers call it. */
  trigger_tables: string[];
}

const RELATIONS_SQL = `
SELECT c.oid::int AS oid, c.relname AS name, c.relkind::text AS relkind, pg_get_userbyid(c.relowner) AS owner,
       pg_has_role(c.relowner, 'MEMBER') AS mine,
       (SELECT e.extname FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_extension'::regclass
           AND d.deptype = 'e' LIMIT 1) AS extension,
       (SELECT t.relname FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid
         WHERE c.relkind = 'S' AND d.classid = 'pg_class'::regclass AND d.objid = c.oid
           AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1) AS owned_by,
       (SELECT t.relname FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid WHERE x.indexrelid = c.oid) AS index_of,
       coalesce((SELECT array_agg(DISTINCT r.relname::text) FROM pg_rewrite w
                  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid AND d.refclassid = 'pg_class'::regclass
                  JOIN pg_class r ON r.oid = d.refobjid
                 WHERE w.ev_class = c.oid AND r.oid <> c.oid AND r.relnamespace = 'public'::regnamespace), '{}') AS reads
FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace ORDER BY c.relname`;

const TYPES_SQL = `
SELECT t.typname AS name, t.typtype::text AS typtype, pg_get_userbyid(t.typowner) AS owner,
       pg_has_role(t.typowner, 'MEMBER') AS mine,
       (SELECT e.extname FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
         WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.refclassid = 'pg_extension'::regclass
           AND d.deptype = 'e' LIMIT 1) AS extension,
       coalesce((SELECT array_agg(DISTINCT c.relname::text) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                  WHERE (a.atttypid = t.oid OR a.atttypid = t.typarray) AND a.attnum > 0 AND NOT a.attisdropped
                    AND c.relkind IN ('r', 'p', 'f') AND c.relnamespace = 'public'::regnamespace), '{}') AS used_by
FROM pg_type t
WHERE t.typnamespace = 'public'::regnamespace
  -- not a relation's row type (those move with the relation), except a standalone composite type
  AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
  -- not an implicit array type, nor a range's multirange (they move with their type)
  AND NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.typarray = t.oid)
  AND NOT EXISTS (SELECT 1 FROM pg_range r WHERE r.rngmultitypid = t.oid)
ORDER BY t.typname`;

// Every user function in the database (those of `public` move; the others are checked for names of
// moved objects in their bodies, which are text resolved when they run).
const FUNCTIONS_SQL = `
SELECT p.oid::int AS oid, p.proname AS name, n.nspname AS schema,
       p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS signature,
       p.prokind::text AS prokind, l.lanname AS language, p.prosrc AS body, p.prosqlbody IS NOT NULL AS atomic,
       p.proconfig AS config, pg_get_userbyid(p.proowner) AS owner, pg_has_role(p.proowner, 'MEMBER') AS mine,
       (SELECT e.extname FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
         WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.refclassid = 'pg_extension'::regclass
           AND d.deptype = 'e' LIMIT 1) AS extension,
       coalesce((SELECT array_agg(DISTINCT c.relname::text) FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
                  WHERE tg.tgfoid = p.oid AND NOT tg.tgisinternal AND c.relnamespace = 'public'::regnamespace), '{}') AS trigger_tables
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' ESCAPE '\\'
ORDER BY n.nspname, p.proname`;

const TRIGGERS_SQL = `
SELECT tg.tgname AS name, c.relname AS "table" FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
WHERE c.relnamespace = 'public'::regnamespace AND NOT tg.tgisinternal ORDER BY c.relname, tg.tgname`;

const POLICIES_SQL = `
SELECT pol.polname AS name, c.relname AS "table" FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid
WHERE c.relnamespace = 'public'::regnamespace ORDER BY c.relname, pol.polname`;

const CONSTRAINTS_SQL = `
SELECT con.conname AS name, con.contype::text AS contype, c.relname AS "table", f.relname AS "references"
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid LEFT JOIN pg_class f ON f.oid = con.confrelid
WHERE c.relnamespace = 'public'::regnamespace ORDER BY c.relname, con.conname`;

// Objects of `public` that adopt does not move (and are not an extension's).
const OTHER_OBJECTS_SQL = `
WITH ns AS (SELECT 'public'::regnamespace AS oid),
ext AS (SELECT classid, objid FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e')
SELECT kind, name FROM (
  SELECT 'operator' AS kind, oprname::text AS name, 'pg_operator'::regclass AS cls, o.oid FROM pg_operator o, ns WHERE oprnamespace = ns.oid
  UNION ALL SELECT 'collation', collname::text, 'pg_collation'::regclass, c.oid FROM pg_collation c, ns WHERE collnamespace = ns.oid
  UNION ALL SELECT 'conversion', conname::text, 'pg_conversion'::regclass, c.oid FROM pg_conversion c, ns WHERE connamespace = ns.oid
  UNION ALL SELECT 'operator class', opcname::text, 'pg_opclass'::regclass, c.oid FROM pg_opclass c, ns WHERE opcnamespace = ns.oid
  UNION ALL SELECT 'operator family', opfname::text, 'pg_opfamily'::regclass, c.oid FROM pg_opfamily c, ns WHERE opfnamespace = ns.oid
  UNION ALL SELECT 'text search configuration', cfgname::text, 'pg_ts_config'::regclass, c.oid FROM pg_ts_config c, ns WHERE cfgnamespace = ns.oid
  UNION ALL SELECT 'text search dictionary', dictname::text, 'pg_ts_dict'::regclass, c.oid FROM pg_ts_dict c, ns WHERE dictnamespace = ns.oid
  UNION ALL SELECT 'text search parser', prsname::text, 'pg_ts_parser'::regclass, c.oid FROM pg_ts_parser c, ns WHERE prsnamespace = ns.oid
  UNION ALL SELECT 'text search template', tmplname::text, 'pg_ts_template'::regclass, c.oid FROM pg_ts_template c, ns WHERE tmplnamespace = ns.oid
  UNION ALL SELECT 'statistics object', stxname::text, 'pg_statistic_ext'::regclass, c.oid FROM pg_statistic_ext c, ns WHERE stxnamespace = ns.oid
) o WHERE NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = o.cls AND ext.objid = o.oid)
ORDER BY kind, name`;

const RELKIND: Record<string, string> = {
  r: "table",
  p: "partitioned table",
  v: "view",
  m: "materialized view",
  S: "sequence",
  f: "foreign table",
  i: "index",
  I: "partitioned index",
  c: "composite type",
};

const TYPTYPE: Record<string, string> = { e: "enum type", c: "composite type", d: "domain", r: "range type", b: "base type", m: "multirange type", p: "pseudo-type" };

/**
 * The objects of `public` that `text` (a function body) names: `public.<name>`, or `<name>`
 * unqualified (resolved through search_path, which finds it in public today). A name qualified by
 * anything else (`auth.users`, `NEW.title`) is not public's. Unquoted identifiers fold to lower case.
 * Conservative: a name in a comment or a string counts too (dynamic SQL is text as well).
 */
function publicNamesIn(text: string, names: Set<string>): string[] {
  const hits = new Set<string>();
  const tokens = [...text.matchAll(/"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*)|(\.)|(\S)/g)].map((m) =>
    m[1] !== undefined ? { id: m[1].replace(/""/g, '"') } : m[2] !== undefined ? { id: m[2].toLowerCase() } : { sym: m[3] ?? m[4]! },
  );
  for (let i = 0; i < tokens.length; i++) {
    const word = tokens[i]!.id;
    if (word === undefined || !names.has(word)) continue;
    const qualified = tokens[i - 1]?.sym === ".";
    const qualifier = qualified ? tokens[i - 2]?.id : undefined;
    if (!qualified) hits.add(word);
    else if (qualifier === "public") hits.add(`public.${word}`);
  }
  return [...hits].sort();
}

interface Inspection {
  objects: PlanObject[];
  problems: string[];
  /** Statements that move the objects, with `$SCHEMA` for the tenant schema. */
  moves: Array<{ sql: (tenant: string) => string; to: "tenant" | "shared" }>;
  tables: Array<{ name: string; to: "tenant" | "shared" }>;
  sequences: Array<{ name: string; to: "tenant" | "shared" }>;
  /** Names that will be in `shared` (relations and types): checked against the catalog's own. */
  sharedNames: Array<{ name: string; of: string }>;
  /** Owner keys (as in the catalog comparison) of the app's views, functions and triggers in the tenant schema. */
  appObjectKeys: Array<{ key: string; label: string }>;
}

async function inspect(client: pg.Client, sharedTables: string[]): Promise<Inspection> {
  const relations = (await client.query<RelationRow>(RELATIONS_SQL)).rows;
  const types = (await client.query<TypeRow>(TYPES_SQL)).rows;
  const functions = (await client.query<FunctionRow>(FUNCTIONS_SQL)).rows;
  const triggers = (await client.query<{ name: string; table: string }>(TRIGGERS_SQL)).rows;
  const policies = (await client.query<{ name: string; table: string }>(POLICIES_SQL)).rows;
  const constraints = (await client.query<{ name: string; contype: string; table: string; references: string | null }>(CONSTRAINTS_SQL)).rows;
  const others = (await client.query<{ kind: string; name: string }>(OTHER_OBJECTS_SQL)).rows;

  const objects: PlanObject[] = [];
  const problems: string[] = [];
  const moves: Inspection["moves"] = [];
  const sharedNames: Inspection["sharedNames"] = [];
  const appObjectKeys: Inspection["appObjectKeys"] = [];
  const q = (name: string) => `public.${quoteIdent(name)}`;
  const target = (to: "tenant" | "shared", tenant: string) => quoteIdent(to === "shared" ? "shared" : tenant);
  const where = (to: Destination) => (to === "shared" ? "shared" : "the tenant schema");
  const notMine = (kind: string, name: string, owner: string) =>
    problems.push(
      `${kind} public.${name} is owned by role ${owner}, which the role adopt connects as is not a member of: ` +
        `connect as its owner, or run ALTER ${kind.toUpperCase()} public.${quoteIdent(name)} OWNER TO <the owner role> first`,
    );

  const byName = new Map(relations.map((r) => [r.name, r]));
  const isTable = (r: RelationRow) => r.relkind === "r" || r.relkind === "p" || r.relkind === "f";
  for (const name of sharedTables) {
    const r = byName.get(name);
    if (!r || !isTable(r) || r.extension) {
      problems.push(`--shared ${name}: public has no table ${name}${r ? ` (it is a ${RELKIND[r.relkind] ?? r.relkind})` : ""}: name tables of public, separated by commas`);
    }
  }
  const side = new Map<string, "tenant" | "shared">();
  for (const r of relations) if (isTable(r) && !r.extension) side.set(r.name, sharedTables.includes(r.name) ? "shared" : "tenant");

  // Views and materialized views go where the tables they read go (transitively); a view reading
  // both sides goes to the tenant schema.
  const views = relations.filter((r) => (r.relkind === "v" || r.relkind === "m") && !r.extension);
  for (let changed = true; changed; ) {
    changed = false;
    for (const v of views) {
      const sides = v.reads.map((n) => side.get(n)).filter((s): s is "tenant" | "shared" => s !== undefined);
      const to = sides.includes("tenant") || sides.length === 0 ? "tenant" : "shared";
      if (side.get(v.name) !== to) {
        side.set(v.name, to);
        changed = true;
      }
    }
  }

  // Foreign keys may not cross between the tenant schema and shared.
  for (const c of constraints) {
    if (c.contype !== "f" || !c.references) continue;
    const from = side.get(c.table);
    const to = side.get(c.references);
    if (from && to && from !== to) {
      problems.push(
        `foreign key ${c.name} of public.${c.table} references public.${c.references}, but ${c.table} would go to ` +
          `${where(from)} and ${c.references} to ${where(to)}: ` +
          (from === "shared"
            ? "a shared row cannot point into one tenant's schema"
            : "a tenant table referencing a shared one is not part of the tenant track") +
          `; put both on the same side (--shared) or drop the constraint first`,
      );
    }
  }

  const tables: Inspection["tables"] = [];
  const sequences: Inspection["sequences"] = [];
  const withTable = (table: string) =>
    [
      ...relations.filter((r) => r.relkind === "S" && r.owned_by === table).map((r) => `sequence ${r.name}`),
      ...relations.filter((r) => (r.relkind === "i" || r.relkind === "I") && r.index_of === table).map((r) => `index ${r.name}`),
      ...constraints.filter((c) => c.table === table && c.contype !== "f" && c.contype !== "p" && c.contype !== "u" && c.contype !== "n").map((c) => `constraint ${c.name}`),
      ...constraints.filter((c) => c.table === table && c.contype === "f").map((c) => `foreign key ${c.name}`),
      ...triggers.filter((t) => t.table === table).map((t) => `trigger ${t.name}`),
      ...policies.filter((p) => p.table === table).map((p) => `policy ${p.name}`),
    ].join(", ");

  for (const r of relations) {
    const kind = RELKIND[r.relkind] ?? `relation (relkind ${r.relkind})`;
    if (r.extension) {
      objects.push({ kind, name: r.name, to: "none", note: `belongs to extension ${r.extension}, which stays where it is` });
      continue;
    }
    if (r.relkind === "i" || r.relkind === "I") continue; // listed with their table
    if (r.relkind === "S" && r.owned_by) {
      const to = side.get(r.owned_by) ?? "tenant";
      sequences.push({ name: r.name, to });
      if (to === "shared") sharedNames.push({ name: r.name, of: `sequence public.${r.name}` });
      continue; // moves with its table
    }
    if (!r.mine) notMine(kind, r.name, r.owner);
    if (isTable(r)) {
      const to = side.get(r.name)!;
      tables.push({ name: r.name, to });
      objects.push({
        kind,
        name: r.name,
        to,
        with: withTable(r.name) || undefined,
        note: to === "shared" ? "the Worker cannot read it until it is added to APP_SHARED_TABLES (docs/roles.md)" : undefined,
      });
      moves.push({ sql: (t) => `ALTER TABLE ${q(r.name)} SET SCHEMA ${target(to, t)};`, to });
      if (to === "shared") {
        sharedNames.push({ name: r.name, of: `table public.${r.name}` });
        for (const i of relations.filter((x) => (x.relkind === "i" || x.relkind === "I") && x.index_of === r.name)) {
          sharedNames.push({ name: i.name, of: `index ${i.name} of public.${r.name}` });
        }
      }
    } else if (r.relkind === "v" || r.relkind === "m") {
      const to = side.get(r.name)!;
      objects.push({
        kind,
        name: r.name,
        to,
        with: withTable(r.name) || undefined,
        note: "its definition refers to tables by identity, so it still reads them after the move",
      });
      const alter = r.relkind === "v" ? "ALTER VIEW" : "ALTER MATERIALIZED VIEW";
      moves.push({ sql: (t) => `${alter} ${q(r.name)} SET SCHEMA ${target(to, t)};`, to });
      if (to === "tenant") appObjectKeys.push({ key: `relation:${r.name}`, label: `${kind} ${r.name}` });
      else sharedNames.push({ name: r.name, of: `${kind} public.${r.name}` });
    } else if (r.relkind === "S") {
      // A sequence no column owns: it goes with the tables whose defaults use it (tenant by default).
      sequences.push({ name: r.name, to: "tenant" });
      objects.push({ kind, name: r.name, to: "tenant", note: "owned by no column" });
      moves.push({ sql: (t) => `ALTER SEQUENCE ${q(r.name)} SET SCHEMA ${target("tenant", t)};`, to: "tenant" });
    } else if (r.relkind === "c") {
      continue; // a standalone composite type: listed with the types
    } else {
      problems.push(`adopt does not move ${kind} public.${r.name}: drop it or move it out of public first, and recreate it after adoption`);
    }
  }

  for (const t of types) {
    const kind = TYPTYPE[t.typtype] ?? `type (typtype ${t.typtype})`;
    if (t.extension) {
      objects.push({ kind, name: t.name, to: "none", note: `belongs to extension ${t.extension}, which stays where it is` });
      continue;
    }
    if (!t.mine) notMine("type", t.name, t.owner);
    if (t.typtype === "r" || t.typtype === "b" || t.typtype === "p" || t.typtype === "m") {
      problems.push(`adopt does not move ${kind} public.${t.name}: drop it or move it out of public first, and recreate it after adoption`);
      continue;
    }
    const sides = new Set(t.used_by.map((n) => side.get(n)));
    if (sides.has("tenant") && sides.has("shared")) {
      const [a, b] = [t.used_by.filter((n) => side.get(n) === "tenant"), t.used_by.filter((n) => side.get(n) === "shared")];
      problems.push(
        `${kind} public.${t.name} is used by ${a.join(", ")} (going to the tenant schema) and by ${b.join(", ")} (going to shared): ` +
          "a type lives in one schema; give each side its own type, or put those tables on the same side",
      );
      continue;
    }
    const to = sides.has("shared") ? "shared" : "tenant";
    objects.push({ kind, name: t.name, to, note: t.used_by.length ? `used by ${t.used_by.join(", ")}` : "used by no table" });
    const alter = t.typtype === "d" ? "ALTER DOMAIN" : "ALTER TYPE";
    moves.push({ sql: (s) => `${alter} ${q(t.name)} SET SCHEMA ${target(to, s)};`, to });
    if (to === "shared") sharedNames.push({ name: t.name, of: `${kind} public.${t.name}` });
  }

  // Names whose appearance in a function body means the body would no longer resolve after the move.
  const movedNames = new Set<string>([
    ...relations.filter((r) => !r.extension).map((r) => r.name),
    ...types.filter((t) => !t.extension).map((t) => t.name),
    ...functions.filter((f) => f.schema === "public" && !f.extension).map((f) => f.name),
  ]);
  for (const f of functions) {
    if (f.extension) {
      if (f.schema === "public") objects.push({ kind: "function", name: f.signature, to: "none", note: `belongs to extension ${f.extension}, which stays where it is` });
      continue;
    }
    const setsPath = (f.config ?? []).find((c) => c.toLowerCase().startsWith("search_path="));
    const named = f.atomic ? [] : publicNamesIn(f.body ?? "", new Set([...movedNames].filter((n) => !(f.schema === "public" && n === f.name))));
    const qualified = `${f.schema === "public" ? "public" : quoteIdent(f.schema)}.${f.signature}`;
    if (named.length) {
      problems.push(
        `function ${qualified} names ${named.join(", ")} in its body, which PostgreSQL keeps as text and resolves only when the function runs: ` +
          "after the move it would no longer find them; drop it before adopting and recreate it in the tenant schema afterwards, " +
          "or rewrite it without naming tables (in a trigger, use NEW/OLD and TG_TABLE_SCHEMA)",
      );
      continue;
    }
    if (f.schema !== "public") continue;
    if (setsPath && /(^|[=,\s"])public([,\s"]|$)/i.test(setsPath)) {
      problems.push(`function ${qualified} sets ${setsPath}: after the move it would look for its objects in public; drop it before adopting and recreate it afterwards`);
      continue;
    }
    if (!f.mine) notMine("function", f.signature, f.owner);
    if (f.prokind === "a" || f.prokind === "w" || f.language === "c" || f.language === "internal") {
      problems.push(`adopt does not move ${f.prokind === "a" || f.prokind === "w" ? "aggregate" : `${f.language} function`} public.${f.signature}: drop it or move it out of public first, and recreate it after adoption`);
      continue;
    }
    const sides = new Set(f.trigger_tables.map((n) => side.get(n)));
    if (sides.has("tenant") && sides.has("shared")) {
      problems.push(`function public.${f.signature} is called by triggers on tables going to the tenant schema and to shared: give each side its own function`);
      continue;
    }
    const to = sides.has("shared") ? "shared" : "tenant";
    const kind = f.prokind === "p" ? "procedure" : "function";
    objects.push({
      kind,
      name: f.signature,
      to,
      note: f.trigger_tables.length ? `called by triggers on ${f.trigger_tables.join(", ")}; names no object of public` : "names no object of public",
    });
    const signature = `public.${quoteIdent(f.name)}(${f.signature.slice(f.name.length + 1)}`;
    moves.push({ sql: (s) => `ALTER ${kind.toUpperCase()} ${signature} SET SCHEMA ${target(to, s)};`, to });
    if (to === "tenant") appObjectKeys.push({ key: `function:${f.name}`, label: `${kind} ${f.signature}` });
  }
  for (const t of triggers) {
    if (side.get(t.table) === "tenant") appObjectKeys.push({ key: `trigger:${t.name}`, label: `trigger ${t.name} on ${t.table}` });
  }
  for (const o of others) {
    problems.push(`adopt does not move ${o.kind} public.${o.name}: drop it or move it out of public first, and recreate it after adoption`);
  }
  return { objects, problems, moves, tables, sequences, sharedNames, appObjectKeys };
}

// ---------------------------------------------------------------------------------------------
// Comparison with the tenant track

/** Pairs "only in app" / "only in track" rows about the same object into readable differences. */
function describeDifferences(app: SchemaCatalog, track: SchemaCatalog, migration: string): string[] {
  const lines: string[] = [];
  const singular: Record<keyof SchemaCatalog, string> = {
    relations: "relation",
    columns: "column",
    constraints: "constraint",
    indexes: "index",
    enums: "enum",
    sequences: "sequence",
    types: "type",
    functions: "function",
    triggers: "trigger",
  };
  for (const key of Object.keys(singular) as Array<keyof SchemaCatalog>) {
    const keyOf = (row: string) => {
      if (key === "constraints") return row.split(" ").slice(0, 2).join(" ");
      if (key === "indexes") return row.split(":")[0]!;
      return row.split(/[ (]/)[0]!;
    };
    const onlyApp = app[key].filter((r) => !track[key].includes(r));
    const onlyTrack = track[key].filter((r) => !app[key].includes(r));
    const trackByKey = new Map(onlyTrack.map((r) => [keyOf(r), r]));
    for (const row of onlyApp) {
      const other = trackByKey.get(keyOf(row));
      if (other !== undefined) {
        trackByKey.delete(keyOf(row));
        lines.push(`${singular[key]} ${keyOf(row)} differs: the app has "${row}", ${migration} has "${other}"`);
      } else {
        lines.push(`extra ${singular[key]} in the app: ${row}`);
      }
    }
    for (const row of trackByKey.values()) lines.push(`missing ${singular[key]} (${migration} has it): ${row}`);
  }
  if (lines.length === 0) {
    // Same rows, another order (e.g. column order).
    lines.push(...diffCatalogs("tenant", app, track, ["app", migration]));
  }
  return lines;
}

interface Comparison {
  matched?: number;
  closest: { index: number; lines: string[] };
  appObjects: string[];
}

/**
 * Applies the tenant track one migration at a time to a scratch schema (inside a savepoint that is
 * rolled back) and compares each step's catalog with the moved tables'.
 */
async function compareWithTrack(client: pg.Client, schema: string, track: Migration[], appObjectKeys: Inspection["appObjectKeys"]): Promise<Comparison> {
  const adopted = renameSchemaInCatalog(await ownedSchemaCatalog(client, schema), schema);
  const steps: OwnedCatalog[] = [];
  await client.query("SAVEPOINT edge_tenants_adopt_reference");
  try {
    const scratch = newTenantSchemaName();
    await client.query(`CREATE SCHEMA ${quoteIdent(scratch)}`);
    for (const migration of track) {
      await client.query(migrationSql(migration, scratch));
      steps.push(renameSchemaInCatalog(await ownedSchemaCatalog(client, scratch), scratch));
    }
  } finally {
    await client.query("ROLLBACK TO SAVEPOINT edge_tenants_adopt_reference");
    await client.query("RELEASE SAVEPOINT edge_tenants_adopt_reference");
  }
  let closest: Comparison["closest"] | undefined;
  let matched: number | undefined;
  let appObjects: string[] = [];
  for (let i = 0; i < steps.length; i++) {
    const reference = steps[i]!;
    const defined = new Set(Object.values(reference).flat().map((r) => r.owner));
    // The app's own views, functions and triggers: kept, unless the track defines one of that name.
    const own = appObjectKeys.filter((o) => !defined.has(o.key));
    const lines = describeDifferences(catalogWithout(adopted, own.map((o) => o.key)), catalogWithout(reference), `tenant/${track[i]!.name}`);
    if (lines.length === 0 && matched === undefined) {
      matched = i;
      appObjects = own.map((o) => o.label);
    }
    if (!closest || lines.length <= closest.lines.length) closest = { index: i, lines };
  }
  return { matched, closest: closest ?? { index: -1, lines: ["the tenant track has no migrations"] }, appObjects };
}

// ---------------------------------------------------------------------------------------------
// Apply and verify

async function countsAndSequences(client: pg.Client, inspection: Inspection, schemaOf: (to: "tenant" | "shared") => string) {
  const counts: Record<string, number> = {};
  for (const t of inspection.tables) {
    const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoteIdent(schemaOf(t.to))}.${quoteIdent(t.name)}`);
    counts[t.name] = Number(rows[0]!.n);
  }
  const sequences: Record<string, string> = {};
  for (const s of inspection.sequences) {
    const { rows } = await client.query<{ v: string }>(
      `SELECT last_value::text || CASE WHEN is_called THEN '' ELSE ' (not yet called)' END AS v FROM ${quoteIdent(schemaOf(s.to))}.${quoteIdent(s.name)}`,
    );
    sequences[s.name] = rows[0]!.v;
  }
  return { counts, sequences };
}

/**
 * Inspects, compares and (unless dryRun) adopts `public` as the tenant `input.slug`. Throws
 * AdoptRefusal (nothing changed) for anything it refuses.
 */
export async function adopt(client: pg.Client, migrations: MigrationSet, input: AdoptInput): Promise<AdoptResult> {
  const hosts = checkAdoptInput(input);
  const name = input.name.trim();
  const sharedTables = [...new Set(input.shared ?? [])];
  const started = performance.now();
  let before: Awaited<ReturnType<typeof countsAndSequences>> | undefined;
  let plan: AdoptPlan | undefined;
  let inspection: Inspection | undefined;
  let grants: AppGrantSummary | undefined;
  try {
    await lockedTransaction(client, async () => {
      await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(input.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS))}`);
      await refuseInitialized(client, input.slug, hosts);
      inspection = await inspect(client, sharedTables);
      plan = { slug: input.slug, name, hosts, schema: "", objects: inspection.objects, appObjects: [] };
      if (inspection.problems.length) throw new AdoptRefusal(`cannot adopt: ${inspection.problems.join("; ")}`, plan);

      // Take the tables now (bounded wait), so the counts below are exact and nothing changes under us.
      if (inspection.tables.length) {
        try {
          await client.query(`LOCK TABLE ${inspection.tables.map((t) => `public.${quoteIdent(t.name)}`).join(", ")} IN ACCESS EXCLUSIVE MODE`);
        } catch (error) {
          if ((error as { code?: string }).code === "55P03") {
            throw new AdoptRefusal(
              `the app's tables are in use (no exclusive lock within ${input.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS} ms): stop the app ` +
                "(adopt in a maintenance window) and run again",
              plan,
            );
          }
          throw error;
        }
      }
      before = await countsAndSequences(client, inspection, () => "public");
      for (const o of plan.objects) if (before.counts[o.name] !== undefined && o.to !== "none" && /table/.test(o.kind)) o.rows = before.counts[o.name];

      await createCatalog(client, migrations);
      const clashes = await sharedClashes(client, inspection.sharedNames);
      if (clashes.length) {
        throw new AdoptRefusal(
          `cannot adopt: ${clashes.map((c) => `${c} cannot move to shared, which already has an object of that name (the tenant catalog)`).join("; ")}: rename it first`,
          plan,
        );
      }
      // Named as for any tenant: a random key, checked against the registry, recorded below.
      const schema = await unusedSchemaName(client);
      plan.schema = schema;
      await client.query(`CREATE SCHEMA ${quoteIdent(schema)}`);
      if (inspection.moves.length) await client.query(inspection.moves.map((m) => m.sql(schema)).join("\n"));

      const comparison = await compareWithTrack(client, schema, migrations.tenant, inspection.appObjectKeys);
      plan.appObjects = comparison.appObjects;
      for (const o of plan.objects) {
        if (comparison.appObjects.some((label) => label.startsWith(`${o.kind} ${o.name}`))) {
          o.note = `${o.note ? `${o.note}; ` : ""}the app's own (the tenant track does not define it): kept`;
        }
      }
      if (comparison.matched === undefined) {
        const closest = migrations.tenant[comparison.closest.index];
        plan.differences = { migration: closest ? `tenant/${closest.name}` : "(none)", lines: comparison.closest.lines };
        throw new AdoptRefusal(
          `cannot adopt: the tables in public match no migration of the tenant track; differences from ` +
            `${plan.differences.migration} (the closest): ${comparison.closest.lines.join("; ")}: make the tables match ` +
            "(rename, add or drop what differs), then run adopt again",
          plan,
        );
      }
      const matched = migrations.tenant.slice(0, comparison.matched + 1);
      const pending = migrations.tenant.slice(comparison.matched + 1).map((m) => m.name);
      plan.match = { migration: matched.at(-1)!.name, head: pending.length === 0, pending };
      if (input.dryRun) throw new DryRunDone(plan);

      await client.query(registerTenantSql(client, { slug: input.slug, name, schema, hosts }) + "\n" + recordSql(client, matched.map((migration) => ({ schema, migration }))));
      if (await citusFor(client)) {
        // On Citus: the adopted tables (and their data) become the tenant's distributed schema, and
        // the tables moved to shared reference tables, in this transaction. The app's own triggers
        // then fire on the worker that holds the tenant, on its rows: Citus calls that unsafe for a
        // trigger that reads or writes other tables (docs/citus.md).
        await client.query("SET LOCAL citus.enable_unsafe_triggers = on");
        await client.query("SELECT citus_schema_distribute($1::regnamespace)", [schema]);
        await client.query("SET LOCAL citus.enable_unsafe_triggers = off");
        await referenceSharedTables(client);
      }
      grants = await applyAppRole(client, { appRole: input.appRole, appPassword: input.appPassword });
    }, { beforeInit: true });
  } catch (error) {
    if (error instanceof DryRunDone) return { plan: error.plan, applied: false };
    if ((error as { code?: string }).code === "55P03") {
      throw new AdoptRefusal(`a lock was not granted within ${input.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS} ms (${(error as Error).message}): stop the app and run again`, plan);
    }
    throw error;
  }
  const committed = performance.now();
  const after = await countsAndSequences(client, inspection!, (to) => (to === "shared" ? "shared" : plan!.schema));
  const verification: Verification = {
    tables: inspection!.tables.map((t) => ({ table: t.name, before: before!.counts[t.name]!, after: after.counts[t.name]! })),
    sequences: inspection!.sequences.map((s) => ({ sequence: s.name, before: before!.sequences[s.name]!, after: after.sequences[s.name]! })),
    ok: true,
  };
  verification.ok = verification.tables.every((t) => t.before === t.after) && verification.sequences.every((s) => s.before === s.after);
  return {
    plan: plan!,
    applied: true,
    grants,
    verification,
    timings: { transactionMs: committed - started, verifyMs: performance.now() - committed },
  };
}

/** Refuses a database that already has the catalog (or a schema named like one of its own). */
async function refuseInitialized(client: pg.Client, slug: string, hosts: string[]): Promise<void> {
  if (await ledgerExists(client)) {
    const facts = [`it has the migration ledger ${LEDGER_TABLE}`];
    if ((await client.query("SELECT to_regclass('shared.tenants') IS NOT NULL AS ok")).rows[0].ok) {
      const taken = await client.query("SELECT 1 FROM shared.tenants WHERE slug = $1", [slug]);
      if (taken.rowCount) facts.push(`tenant ${slug} already exists`);
      for (const o of await hostOwners(client, hosts)) facts.push(`host ${o.host} already belongs to tenant ${o.slug}`);
    }
    throw new AdoptRefusal(
      `this database is already initialized (${facts.join("; ")}): adopt turns a database without the edge-tenants catalog ` +
        "into one; here create tenants with `npm run tenants -- create`",
    );
  }
  const { rows } = await client.query<{ name: string }>(
    "SELECT nspname AS name FROM pg_namespace WHERE nspname = 'shared' OR nspname LIKE 'tenant\\_%' ESCAPE '\\' ORDER BY 1 LIMIT 1",
  );
  if (rows.length) {
    throw new AdoptRefusal(
      `schema ${rows[0]!.name} exists but the database has no migration ledger: adopt needs the names shared and tenant_* free; ` +
        "rename that schema first",
    );
  }
}

async function sharedClashes(client: pg.Client, names: Inspection["sharedNames"]): Promise<string[]> {
  if (names.length === 0) return [];
  const { rows } = await client.query<{ name: string }>(
    `SELECT relname AS name FROM pg_class WHERE relnamespace = 'shared'::regnamespace AND relname = ANY($1::text[])
     UNION SELECT typname FROM pg_type WHERE typnamespace = 'shared'::regnamespace AND typname = ANY($1::text[])`,
    [names.map((n) => n.name)],
  );
  const taken = new Set(rows.map((r) => r.name));
  return names.filter((n) => taken.has(n.name)).map((n) => n.of);
}

// ---------------------------------------------------------------------------------------------
// Output

export function describePlan(plan: AdoptPlan, applied: boolean): string {
  const lines: string[] = [];
  lines.push(`Adopt public as tenant ${plan.slug} ("${plan.name}", ${plan.hosts.length === 1 ? "host" : "hosts"} ${plan.hosts.join(", ")}):`);
  const groups: Array<[Destination, string]> = [
    ["tenant", applied ? `schema ${plan.schema} (the tenant's)` : "a new schema tenant_<key> (the tenant's; its key is drawn when applied)"],
    ["shared", "schema shared"],
    ["none", "nowhere"],
  ];
  for (const [to, title] of groups) {
    const objects = plan.objects.filter((o) => o.to === to);
    if (!objects.length) continue;
    lines.push(`  to ${title}:`);
    for (const o of objects) {
      const rows = o.rows !== undefined ? ` (${o.rows} rows)` : "";
      lines.push(`    ${o.kind} ${o.name}${rows}${o.with ? `, with ${o.with}` : ""}${o.note ? ` [${o.note}]` : ""}`);
    }
  }
  if (plan.match) {
    lines.push(
      plan.match.head
        ? `The tables match tenant migration ${plan.match.migration} (the head).`
        : `The tables match tenant migration ${plan.match.migration}; pending after it: ${plan.match.pending.join(", ")}.`,
    );
  }
  if (plan.appObjects.length) lines.push(`Kept as the app's own (not in the tenant track): ${plan.appObjects.join(", ")}.`);
  return lines.join("\n");
}
