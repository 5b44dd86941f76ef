// The two database roles. The owner (whoever DATABASE_URL names for the CLIs) runs `init`,
// migrations and tenant commands and owns every object. The app role is what the Worker connects
// as: USAGE on `shared` and on every tenant schema, SELECT on the catalog tables the request path
// reads, DML on tenant tables, USAGE/SELECT on their sequences, USAGE on their types. No DDL, no
// CREATE on any schema, not the owner of anything, not a superuser, no BYPASSRLS, no access to
// the migration ledger; on the other shared tables only the DML that claiming a warm-pool slot
// needs (signupGrantSql, for POST /signup).
//
// New tenant objects get their grants from per-schema default privileges, set when the schema is
// created (`ALTER DEFAULT PRIVILEGES FOR ROLE <owner> IN SCHEMA ...`), so migrations pay nothing
// for them; after each migration transaction the runner also grants whatever a tenant object
// still lacks (e.g. a table created by another role than the one that set the defaults).
import { randomBytes } from "node:crypto";
import pg from "pg";
import { SHARED_SCHEMA, quoteIdent } from "../../src/tenancy/naming.ts";

export const DEFAULT_APP_ROLE = "edge_tenants_app";

/** The only shared tables the Worker reads (host -> tenant). Everything else in `shared` is closed to it. */
export const APP_SHARED_TABLES = ["tenants", "tenant_hosts"] as const;

/** A refused role setup: one line for the user, and nothing changed. */
export class AppRoleError extends Error {}

const RESERVED_ROLE_NAMES = new Set(["public", "none", "current_role", "current_user", "session_user"]);

/** Why `name` cannot be the app role, or undefined when it is fine. */
export function appRoleNameError(name: string): string | undefined {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) {
    return (
      `invalid app role name "${name}": use a lowercase letter or underscore, then up to 62 lowercase letters, ` +
      `digits or underscores (e.g. ${DEFAULT_APP_ROLE})`
    );
  }
  if (name.startsWith("pg_")) return `invalid app role name "${name}": names starting with pg_ are reserved by PostgreSQL`;
  if (RESERVED_ROLE_NAMES.has(name)) return `invalid app role name "${name}": it is reserved by PostgreSQL`;
  return undefined;
}

/**
 * The app role's name: `explicit` (e.g. `--app-role`), else APP_DATABASE_ROLE, else the default.
 * Throws AppRoleError for an invalid name.
 */
export function resolveAppRole(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.APP_DATABASE_ROLE?.trim();
  const name = explicit ?? (fromEnv ? fromEnv : DEFAULT_APP_ROLE);
  const problem = appRoleNameError(name);
  if (problem) throw new AppRoleError(explicit === undefined && fromEnv ? `APP_DATABASE_ROLE: ${problem}` : problem);
  return name;
}

export interface AppRoleOptions {
  /** The app role's name; APP_DATABASE_ROLE or `edge_tenants_app` when absent. */
  appRole?: string;
  /**
   * init only: when the role is created, LOGIN with this password (NOLOGIN without one); when it
   * exists, its password is set to this. APP_DATABASE_PASSWORD when absent.
   */
  appPassword?: string;
  /** init only: told what was granted. */
  onGrants?: (summary: AppGrantSummary) => void;
  /**
   * init only: the app role's statement_timeout in this database, in milliseconds (0: none), so one
   * tenant's slow query cannot hold the database. APP_STATEMENT_TIMEOUT_MS, else 5000.
   */
  appStatementTimeoutMs?: number;
}

export const DEFAULT_APP_STATEMENT_TIMEOUT_MS = 5_000;

/** The app role's statement_timeout from the option, APP_STATEMENT_TIMEOUT_MS, or the default. */
export function resolveAppStatementTimeout(explicit?: number, env: NodeJS.ProcessEnv = process.env): number {
  if (explicit !== undefined) return explicit;
  const raw = env.APP_STATEMENT_TIMEOUT_MS;
  if (raw === undefined || raw === "") return DEFAULT_APP_STATEMENT_TIMEOUT_MS;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    throw new AppRoleError(`APP_STATEMENT_TIMEOUT_MS must be a whole number of milliseconds (0 for none), not "${raw}"`);
  }
  return value;
}

export interface AppGrantSummary {
  role: string;
  /** True when init created the role. */
  created: boolean;
  /** Tenant schemas whose grants were (re-)applied. */
  tenantSchemas: number;
  /** Problems that did not stop init (e.g. PUBLIC keeps CREATE on schema public). */
  warnings: string[];
  /** The app role's statement_timeout in this database (ms; 0: none), or undefined if it could not be set. */
  statementTimeoutMs?: number;
}

/**
 * The grants a brand-new (empty) tenant schema needs, as SQL to run right after CREATE SCHEMA in
 * the same transaction: USAGE on it, and default privileges so every table, sequence and type the
 * owner creates there later (the tenant migrations) is usable by the app role at once.
 */
export function newTenantSchemaGrantSql(role: string, schema: string): string {
  const s = quoteIdent(schema);
  const r = quoteIdent(role);
  return [
    `GRANT USAGE ON SCHEMA ${s} TO ${r};`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA ${s} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${r};`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA ${s} GRANT USAGE, SELECT ON SEQUENCES TO ${r};`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA ${s} GRANT USAGE ON TYPES TO ${r};`,
  ].join("\n");
}

/** Takes back everything `r` holds in schema `s` (both quoted), including default privileges. */
function revokeAllInSchemaSql(s: string, r: string): string[] {
  return [
    `REVOKE ALL ON SCHEMA ${s} FROM ${r};`,
    `REVOKE ALL ON ALL TABLES IN SCHEMA ${s} FROM ${r};`,
    `REVOKE ALL ON ALL SEQUENCES IN SCHEMA ${s} FROM ${r};`,
    `REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ${s} FROM ${r};`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA ${s} REVOKE ALL ON TABLES FROM ${r};`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA ${s} REVOKE ALL ON SEQUENCES FROM ${r};`,
  ];
}

/**
 * Resets the app role's privileges on an existing tenant schema to exactly what serving needs:
 * anything extra (CREATE, TRUNCATE, ...) is revoked, anything missing granted, defaults re-set.
 */
function tenantSchemaResetSql(role: string, schema: string): string {
  const s = quoteIdent(schema);
  const r = quoteIdent(role);
  return [
    ...revokeAllInSchemaSql(s, r),
    `ALTER DEFAULT PRIVILEGES IN SCHEMA ${s} REVOKE ALL ON TYPES FROM ${r};`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${s} TO ${r};`,
    `GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ${s} TO ${r};`,
    newTenantSchemaGrantSql(role, schema),
  ].join("\n");
}

/**
 * What `POST /signup` needs to claim a warm-pool slot (shared migration 0007_tenant_pool): find a free slot and
 * mark it claimed, insert the tenant (slug, name and schema only: status and tier keep their
 * defaults) and its first host, give the slot's registry row its tenant (a trigger allows that only
 * for a registry row that has no tenant yet, i.e. a pool slot), and read the host quarantine.
 */
export function signupGrantSql(role: string): string[] {
  const s = quoteIdent(SHARED_SCHEMA);
  const r = quoteIdent(role);
  return [
    `GRANT SELECT, UPDATE (claimed_at, claim_token) ON ${s}.tenant_pool TO ${r};`,
    `GRANT INSERT (slug, name, schema_name) ON ${s}.tenants TO ${r};`,
    `GRANT INSERT (host, tenant_id, is_primary) ON ${s}.tenant_hosts TO ${r};`,
    `GRANT SELECT, UPDATE (tenant_id) ON ${s}.tenant_schemas TO ${r};`,
    `GRANT SELECT ON ${s}.released_hosts TO ${r};`,
  ];
}

function sharedResetSql(role: string, pool: boolean): string {
  const s = quoteIdent(SHARED_SCHEMA);
  const r = quoteIdent(role);
  return [
    ...revokeAllInSchemaSql(s, r),
    `GRANT USAGE ON SCHEMA ${s} TO ${r};`,
    `GRANT SELECT ON ${APP_SHARED_TABLES.map((t) => `${s}.${quoteIdent(t)}`).join(", ")} TO ${r};`,
    ...(pool ? signupGrantSql(role) : []),
    // The migration ledger and anything else in public: nothing.
    `REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ${r};`,
    `REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM ${r};`,
    `REVOKE CREATE ON SCHEMA public FROM ${r};`,
  ].join("\n");
}

interface RoleRow {
  rolsuper: boolean;
  rolbypassrls: boolean;
  rolcreaterole: boolean;
  rolcreatedb: boolean;
  rolreplication: boolean;
  member_of: string[];
  owns: number;
  owns_database: boolean;
}

async function readRole(client: pg.ClientBase, role: string): Promise<RoleRow | undefined> {
  const { rows } = await client.query<RoleRow>(
    `SELECT r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb, r.rolreplication,
            coalesce((SELECT array_agg(g.rolname::text ORDER BY g.rolname) FROM pg_auth_members m
                      JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid), '{}') AS member_of,
            (SELECT count(*)::int FROM pg_shdepend d
              WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = r.oid AND d.deptype = 'o'
                AND d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())) AS owns,
            EXISTS (SELECT 1 FROM pg_database WHERE datname = current_database() AND datdba = r.oid) AS owns_database
     FROM pg_roles r WHERE r.rolname = $1`,
    [role],
  );
  return rows[0];
}

function roleProblems(role: string, row: RoleRow): string[] {
  const problems: string[] = [];
  if (row.rolsuper) problems.push("is a superuser");
  if (row.rolbypassrls) problems.push("has BYPASSRLS");
  if (row.rolcreaterole) problems.push("has CREATEROLE");
  if (row.rolcreatedb) problems.push("has CREATEDB");
  if (row.rolreplication) problems.push("has REPLICATION");
  if (row.member_of.length) problems.push(`is a member of ${row.member_of.join(", ")}`);
  if (row.owns_database) problems.push("owns this database");
  if (row.owns) problems.push(`owns ${row.owns} object(s) in this database`);
  return problems.length ? [`role ${role} ${problems.join(", ")}`] : [];
}

function passwordSql(client: pg.ClientBase, password: string): string {
  if (password.length < 16) {
    throw new AppRoleError("the app role's password (APP_DATABASE_PASSWORD) must be at least 16 characters; use a random one");
  }
  return `LOGIN PASSWORD ${client.escapeLiteral(password)}`;
}

/** Creates the app role when missing (NOLOGIN unless a password is given); refuses a role with powers. */
async function ensureRole(client: pg.ClientBase, role: string, password: string | undefined): Promise<boolean> {
  const { rows: me } = await client.query<{ name: string; super: boolean; createrole: boolean }>(
    "SELECT current_user AS name, rolsuper AS super, rolcreaterole AS createrole FROM pg_roles WHERE rolname = current_user",
  );
  const owner = me[0]!;
  if (owner.name === role) {
    throw new AppRoleError(
      `the app role ${role} is the role DATABASE_URL connects as: the Worker's role must not be the owner; ` +
        "choose another --app-role (or APP_DATABASE_ROLE), or connect the CLIs as the owner",
    );
  }
  let created = false;
  let row = await readRole(client, role);
  if (!row) {
    if (!owner.super && !owner.createrole) {
      throw new AppRoleError(
        `role ${role} does not exist and ${owner.name} may not create roles (no CREATEROLE): ` +
          `create it as an administrator (CREATE ROLE ${quoteIdent(role)} LOGIN PASSWORD '...'; see docs/roles.md), then run init again`,
      );
    }
    // Roles are global to the server: another database's init may create it at the same moment.
    await client.query("SAVEPOINT edge_tenants_app_role");
    try {
      await client.query(`CREATE ROLE ${quoteIdent(role)} ${password === undefined ? "NOLOGIN" : passwordSql(client, password)}`);
      await client.query("RELEASE SAVEPOINT edge_tenants_app_role");
      created = true;
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code !== "42710" && code !== "23505") throw error;
      await client.query("ROLLBACK TO SAVEPOINT edge_tenants_app_role");
    }
    row = (await readRole(client, role))!;
  } else if (password !== undefined) {
    await setRolePassword(client, role, password);
  }
  const problems = roleProblems(role, row);
  if (problems.length) {
    throw new AppRoleError(
      `${problems.join("; ")}: the Worker's role may hold only the grants init gives it. ` +
        "Create a plain role with SQL (see docs/roles.md) or choose another --app-role",
    );
  }
  return created;
}

async function setRolePassword(client: pg.ClientBase, role: string, password: string): Promise<void> {
  try {
    await client.query(`ALTER ROLE ${quoteIdent(role)} ${passwordSql(client, password)}`);
  } catch (error) {
    if ((error as { code?: string }).code === "42501") {
      throw new AppRoleError(`cannot set the password of role ${role}: ${(error as Error).message} (an administrator must do it)`);
    }
    throw error;
  }
}

/**
 * What init runs (inside its transaction): creates the app role if missing, then resets its grants
 * on `shared`, `public` and every tenant schema in the catalog to exactly what serving needs.
 */
export async function applyAppRole(client: pg.ClientBase, options: AppRoleOptions = {}): Promise<AppGrantSummary> {
  const role = resolveAppRole(options.appRole);
  const password = options.appPassword ?? (process.env.APP_DATABASE_PASSWORD || undefined);
  const created = await ensureRole(client, role, password);
  const { rows: poolRows } = await client.query<{ pool: boolean }>("SELECT to_regclass('shared.tenant_pool') IS NOT NULL AS pool");
  const pool = poolRows[0]!.pool;
  // Tenants' schemas, and the warm pool's unclaimed ones (they become tenants' schemas when claimed).
  const { rows: schemas } = await client.query<{ schema: string }>(
    `SELECT t.schema_name AS schema FROM ${quoteIdent(SHARED_SCHEMA)}.tenants t
     JOIN pg_namespace n ON n.nspname = t.schema_name
     ${pool ? `UNION SELECT p.schema_name FROM ${quoteIdent(SHARED_SCHEMA)}.tenant_pool p JOIN pg_namespace n ON n.nspname = p.schema_name WHERE p.claimed_at IS NULL` : ""}
     ORDER BY 1`,
  );
  const statements = [sharedResetSql(role, pool), ...schemas.map((s) => tenantSchemaResetSql(role, s.schema))];
  // Many schemas: a few hundred statements per round trip.
  for (let i = 0; i < statements.length; i += 200) await client.query(statements.slice(i, i + 200).join("\n"));
  await grantMissingOnTenantSchemas(client, schemas.map((s) => s.schema), role);

  const warnings: string[] = [];
  // PostgreSQL before 15 lets every role create objects in `public`; close it where allowed.
  const canCreateInPublic = async () =>
    (await client.query<{ ok: boolean }>("SELECT has_schema_privilege($1, 'public', 'CREATE') AS ok", [role])).rows[0]!.ok;
  if (await canCreateInPublic()) {
    await client.query("SAVEPOINT edge_tenants_public");
    try {
      await client.query("REVOKE CREATE ON SCHEMA public FROM PUBLIC");
      await client.query("RELEASE SAVEPOINT edge_tenants_public");
    } catch {
      await client.query("ROLLBACK TO SAVEPOINT edge_tenants_public");
    }
    if (await canCreateInPublic()) {
      warnings.push(
        `role ${role} can still create objects in schema public (the server grants it to PUBLIC and ` +
          "this role may not revoke it): have the schema's owner run REVOKE CREATE ON SCHEMA public FROM PUBLIC",
      );
    }
  }
  // Every session of the app role in this database (the Worker's) stops a statement after this long.
  const timeoutMs = resolveAppStatementTimeout(options.appStatementTimeoutMs);
  const { rows: dbRows } = await client.query<{ db: string }>("SELECT current_database() AS db");
  let statementTimeoutMs: number | undefined = timeoutMs;
  await client.query("SAVEPOINT edge_tenants_timeout");
  try {
    await client.query(`ALTER ROLE ${quoteIdent(role)} IN DATABASE ${quoteIdent(dbRows[0]!.db)} SET statement_timeout = ${timeoutMs}`);
    await client.query("RELEASE SAVEPOINT edge_tenants_timeout");
  } catch (error) {
    if ((error as { code?: string }).code !== "42501") throw error;
    await client.query("ROLLBACK TO SAVEPOINT edge_tenants_timeout");
    statementTimeoutMs = undefined;
    warnings.push(
      `cannot set role ${role}'s statement_timeout (${(error as Error).message}): have an administrator run ` +
        `ALTER ROLE ${quoteIdent(role)} IN DATABASE ${quoteIdent(dbRows[0]!.db)} SET statement_timeout = ${timeoutMs}`,
    );
  }
  const summary: AppGrantSummary = { role, created, tenantSchemas: schemas.length, warnings, statementTimeoutMs };
  options.onGrants?.(summary);
  return summary;
}

interface MissingRow {
  kind: "schema" | "table" | "sequence" | "type";
  objects: string;
}

/**
 * Grants the app role what it lacks on the objects of `schemas` (tenant schemas): one catalog
 * query, and GRANTs only when something is missing. The runner calls it after each migration
 * transaction's tenant work; with default privileges in place it finds nothing.
 */
export async function grantMissingOnTenantSchemas(client: pg.ClientBase, schemas: string[], appRole?: string): Promise<void> {
  if (schemas.length === 0) return;
  const role = resolveAppRole(appRole);
  let rows: MissingRow[];
  try {
    ({ rows } = await client.query<MissingRow>(
      `WITH ns AS (SELECT oid, nspname FROM pg_namespace WHERE nspname = ANY($1::text[]))
       SELECT kind, string_agg(name, ', ') AS objects FROM (
         SELECT 'schema' AS kind, quote_ident(ns.nspname) AS name FROM ns
          WHERE NOT has_schema_privilege($2, ns.oid, 'USAGE')
         UNION ALL
         SELECT 'table', c.oid::regclass::text FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
            AND NOT (has_table_privilege($2, c.oid, 'SELECT') AND has_table_privilege($2, c.oid, 'INSERT')
                 AND has_table_privilege($2, c.oid, 'UPDATE') AND has_table_privilege($2, c.oid, 'DELETE'))
         UNION ALL
         SELECT 'sequence', c.oid::regclass::text FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
          WHERE c.relkind = 'S'
            AND NOT (has_sequence_privilege($2, c.oid, 'USAGE') AND has_sequence_privilege($2, c.oid, 'SELECT'))
         UNION ALL
         SELECT 'type', t.oid::regtype::text FROM pg_type t JOIN ns ON ns.oid = t.typnamespace
          WHERE t.typtype IN ('e', 'd', 'r', 'm') AND NOT has_type_privilege($2, t.oid, 'USAGE')
       ) missing GROUP BY kind`,
      [schemas, role],
    ));
  } catch (error) {
    if ((error as { code?: string }).code === "42704") {
      throw new AppRoleError(
        `the app role ${role} does not exist: run \`npm run tenants -- init\` to create it and its grants ` +
          "(or set APP_DATABASE_ROLE to the Worker's role)",
      );
    }
    throw error;
  }
  const r = quoteIdent(role);
  const grants: Record<MissingRow["kind"], (objects: string) => string> = {
    schema: (o) => `GRANT USAGE ON SCHEMA ${o} TO ${r}`,
    table: (o) => `GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE ${o} TO ${r}`,
    sequence: (o) => `GRANT USAGE, SELECT ON SEQUENCE ${o} TO ${r}`,
    type: (o) => `GRANT USAGE ON TYPE ${o} TO ${r}`,
  };
  for (const row of rows) await client.query(grants[row.kind](row.objects));
}

/**
 * The grant SQL for a tenant schema `createTenant` has just created; refuses clearly when the app
 * role is missing (the database was initialized before roles existed: run init again).
 */
export function tenantCreationGrantSql(schema: string, options: AppRoleOptions = {}): string {
  return newTenantSchemaGrantSql(resolveAppRole(options.appRole), schema);
}

/** Translates "role does not exist" from a tenant creation into the one-line fix. */
export function appRoleMissingError(error: unknown, options: AppRoleOptions = {}): AppRoleError | undefined {
  const e = error as { code?: string; message?: string };
  if (e.code !== "42704" || !/role .* does not exist/.test(e.message ?? "")) return undefined;
  const role = resolveAppRole(options.appRole);
  return new AppRoleError(
    `the app role ${role} does not exist: run \`npm run tenants -- init\` to create it and its grants ` +
      "(or set APP_DATABASE_ROLE to the Worker's role)",
  );
}

/** A random password for the app role (URL-safe). */
export function randomAppPassword(): string {
  return randomBytes(24).toString("base64url");
}

/** `ownerUrl` with the app role's user and password instead of the owner's. */
export function appDatabaseUrl(ownerUrl: string, role: string, password: string): string {
  const url = new URL(ownerUrl);
  url.username = encodeURIComponent(role);
  url.password = encodeURIComponent(password);
  return url.toString();
}

/**
 * For local runs (`npm run dev`, the tests): gives the app role LOGIN with a fresh random password
 * and returns the Worker's connection string. The password lives only in that string.
 */
export async function prepareAppLogin(client: pg.ClientBase, ownerUrl: string, appRole?: string): Promise<string> {
  const role = resolveAppRole(appRole);
  const password = randomAppPassword();
  await setRolePassword(client, role, password);
  return appDatabaseUrl(ownerUrl, role, password);
}

/**
 * The connection string `npm run dev` gives the Worker: APP_DATABASE_URL when set; for the
 * embedded database, the app role with a fresh random password (set on every start, never
 * printed). Another database without APP_DATABASE_URL is refused: changing the app role's password
 * there could lock out a deployed Worker.
 */
export async function workerDatabaseUrl(database: { url: string; embedded: boolean }, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.APP_DATABASE_URL) return env.APP_DATABASE_URL;
  if (!database.embedded) {
    throw new AppRoleError(
      "DATABASE_URL names a database other than the embedded one: set APP_DATABASE_URL to the app role's " +
        "connection string, which the Worker will use (see docs/roles.md)",
    );
  }
  const client = new pg.Client({ connectionString: database.url, application_name: "edge-tenants" });
  await client.connect();
  try {
    return await prepareAppLogin(client, database.url, resolveAppRole(undefined, env));
  } finally {
    await client.end();
  }
}
