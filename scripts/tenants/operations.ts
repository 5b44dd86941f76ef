// Tenant lifecycle on a real PostgreSQL session: init, create, delete, hosts and status. Each
// change is one transaction under the migration lock; a refused change leaves nothing behind.
import { createHash, randomBytes } from "node:crypto";
import type pg from "pg";
import { hostError, newTenantSchemaName, normalizeHost, quoteIdent, slugError } from "../../src/tenancy/naming.ts";
import { applyAppRole, appRoleMissingError, tenantCreationGrantSql, type AppRoleOptions } from "../db/roles.ts";
import { CREATE_LOCK_TABLE_SQL, commandTransaction, sqlstate } from "../migrations/lock.ts";
import { STALENESS_BOUND_SECONDS } from "./staleness.ts";
import { OLDEST_FREE_SLOT_SQL, claimPickedSlot, requireAtHead, requireSummaryAtHead } from "./pool.ts";
import { migrationQueries, type MigrationSet } from "../migrations/files.ts";
import { SHARED_SHARDING_OFF_SQL, citusFor, createTenantSchemaQueries, referenceSharedTables, sendQueries } from "../db/citus.ts";
import {
  CREATE_LEDGER_SQL,
  LEDGER_TABLE,
  fleetSummaryOf,
  fleetSummarySql,
  ledgerExists,
  recordSql,
  type FleetSummaryRow,
  type LedgerState,
} from "../migrations/ledger.ts";

/** A refused tenant command: one line for the user, and nothing changed. */
export class TenantCommandError extends Error {}
import { RATE_LIMIT_TIERS } from "../../src/db/schema/shared.ts";
import { refuseIfDeleted } from "./retention.ts";

export type RateLimitTier = (typeof RATE_LIMIT_TIERS)[number];

export interface TenantInfo {
  id: number;
  slug: string;
  name: string;
  schema: string;
  status: "active" | "suspended";
  /** Which per-tenant request limit of the Worker applies (wrangler.toml's TENANT_LIMITER bindings). */
  rateLimitTier: RateLimitTier;
  /** Set while the tenant is in maintenance (`maintenance <slug> on`): its message and since when. */
  maintenance: { message: string; since: string } | null;
  hosts: Array<{ host: string; primary: boolean }>;
  createdAt: string;
  updatedAt: string;
  /** Set while the tenant is deleted and retained (`delete`): when, and from when on `purge-deleted` drops it. */
  deleted: { deletedAt: string; purgeAfter: string } | null;
}

const LOCK_TIMEOUT_MS = 10_000;

/**
 * One transaction holding the migration lock (a transaction-scoped advisory lock, so it holds
 * through transaction-mode poolers), around `work`; waits a bounded time while another command
 * holds it or a migration run is in progress (migrations/lock.ts).
 */
export async function lockedTransaction<T>(
  client: pg.Client,
  work: (state: LedgerState) => Promise<T>,
  options: { beforeInit?: boolean } = {},
): Promise<T> {
  return commandTransaction(
    client,
    LOCK_TIMEOUT_MS,
    work,
    (holder) => new TenantCommandError(`the migration lock is held by ${holder}; try again when it has finished`),
    !options.beforeInit,
  );
}

async function requireInitialized(client: pg.Client): Promise<void> {
  if (!(await ledgerExists(client))) throw notInitializedError();
}

function notInitializedError(): TenantCommandError {
  return new TenantCommandError("the database is not initialized: run `npm run tenants -- init` first");
}

/**
 * Creates the ledger and the shared schema at head, and the app role with its grants, in one
 * transaction. False if the database was already initialized (the app role's grants are then
 * re-applied on shared and every tenant schema).
 */
export async function initDatabase(client: pg.Client, migrations: MigrationSet, roles: AppRoleOptions = {}): Promise<boolean> {
  return lockedTransaction(client, async () => {
    if (await ledgerExists(client)) {
      await applyAppRole(client, roles);
      return false;
    }
    const { rows } = await client.query<{ name: string }>(
      "SELECT nspname AS name FROM pg_namespace WHERE nspname = 'shared' OR nspname LIKE 'tenant\\_%' ESCAPE '\\' LIMIT 1",
    );
    if (rows.length) {
      throw new TenantCommandError(
        `schema ${rows[0]!.name} exists but the database has no migration ledger (${LEDGER_TABLE}): ` +
          "it was not initialized by edge-tenants; use an empty database",
      );
    }
    await createCatalog(client, migrations);
    await applyAppRole(client, roles);
    return true;
  }, { beforeInit: true });
}

/** Inside init's (or adopt's) transaction: the ledger, schema `shared` at head and the lock table. */
export async function createCatalog(client: pg.Client, migrations: MigrationSet): Promise<void> {
  const citus = await citusFor(client);
  // On Citus: `shared` is an ordinary schema, never a distributed one, whatever the server's default.
  if (citus) await client.query(SHARED_SHARDING_OFF_SQL);
  await client.query(CREATE_LEDGER_SQL);
  for (const migration of migrations.shared) {
    for (const query of migrationQueries(migration, "shared", citus)) await client.query(query);
  }
  await client.query(CREATE_LOCK_TABLE_SQL);
  await client.query(recordSql(client, migrations.shared.map((migration) => ({ schema: "shared", migration }))));
  if (citus) await referenceSharedTables(client);
}

/**
 * Inside the caller's transaction: a new, empty tenant schema (a distributed schema on Citus) with
 * the app role's grants, the tenant migrations `tenant` applied and recorded in the ledger.
 * `before` runs first in the same way (e.g. the catalog rows).
 */
export async function createTenantSchema(
  client: pg.Client,
  schema: string,
  migrations: MigrationSet["tenant"],
  roles: AppRoleOptions,
  before: string[] = [],
  after: string[] = [],
): Promise<pg.QueryResult> {
  const citus = await citusFor(client);
  const queries = [
    ...before,
    ...createTenantSchemaQueries(quoteIdent(schema), citus),
    tenantCreationGrantSql(schema, roles),
    ...migrations.flatMap((m) => migrationQueries(m, schema, citus)),
    recordSql(client, migrations.map((migration) => ({ schema, migration }))),
    ...after,
  ];
  try {
    return await sendQueries(client, queries, citus);
  } catch (error) {
    throw appRoleMissingError(error, roles) ?? error;
  }
}

export function checkHosts(hosts: string[]): string[] {
  const normalized: string[] = [];
  for (const host of hosts) {
    const problem = hostError(host);
    if (problem) throw new TenantCommandError(problem);
    const n = normalizeHost(host)!;
    if (!normalized.includes(n)) normalized.push(n);
  }
  return normalized;
}

export async function hostOwners(client: pg.Client, hosts: string[]): Promise<Array<{ host: string; slug: string }>> {
  return (await client.query<{ host: string; slug: string }>(hostOwnersSql("$1"), [hosts])).rows;
}

/** hostOwners' query, its hosts parameter at this placeholder. */
function hostOwnersSql(hosts: string): string {
  return `SELECT h.host, t.slug FROM shared.tenant_hosts h JOIN shared.tenants t ON t.id = h.tenant_id
     WHERE h.host = ANY(${hosts}::text[]) ORDER BY h.host`;
}

/** A host released from another tenant less than the staleness bound ago. */
export interface QuarantinedHost {
  host: string;
  /** The tenant it was taken from (its slug, or "a deleted tenant"). */
  formerTenant: string;
  releasedAt: string;
  /** When it may be attached to another tenant (UTC, ISO 8601). */
  freeAt: string;
  minutesLeft: number;
}

/**
 * Hosts among `hosts` taken from a tenant other than `tenantId` less than the staleness bound ago:
 * caches may still send their visitors to that tenant, so attaching them elsewhere waits.
 */
async function quarantinedHosts(client: pg.Client, hosts: string[], tenantId: number | null): Promise<QuarantinedHost[]> {
  const { rows } = await client.query<QuarantinedHost>(quarantinedHostsSql("$1", "$2", "$3"), [hosts, tenantId, STALENESS_BOUND_SECONDS]);
  return rows;
}

/** quarantinedHosts' query, with its parameters (hosts, tenant id, staleness bound) at these placeholders. */
function quarantinedHostsSql(hosts: string, tenantId: string, bound: string): string {
  return `SELECT r.host, coalesce('tenant ' || t.slug, 'a deleted tenant') AS "formerTenant",
            to_char(r.released_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS "releasedAt",
            to_char((r.released_at + make_interval(secs => ${bound})) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS "freeAt",
            ceil(extract(epoch FROM r.released_at + make_interval(secs => ${bound}) - now()) / 60)::int AS "minutesLeft"
     FROM shared.released_hosts r LEFT JOIN shared.tenants t ON t.id = r.tenant_id
     WHERE r.host = ANY(${hosts}::text[]) AND r.tenant_id IS DISTINCT FROM ${tenantId}::bigint
       AND r.released_at + make_interval(secs => ${bound}) > now()
     ORDER BY r.host`;
}

function quarantineError(held: QuarantinedHost[]): TenantCommandError {
  return new TenantCommandError(
    held
      .map(
        (q) =>
          `host ${q.host} was removed from ${q.formerTenant} at ${q.releasedAt}; cached answers may still send its ` +
          `visitors there until ${q.freeAt} (${q.minutesLeft} min from now)`,
      )
      .join("; ") + ": attach it to another tenant after that, or pass --force to attach it now anyway",
  );
}

/** Checks quarantine (unless forced) and forgets the hosts' release, as they are attached now. */
export async function claimReleasedHosts(client: pg.Client, hosts: string[], tenantId: number | null, force: boolean): Promise<QuarantinedHost[]> {
  const held = await quarantinedHosts(client, hosts, tenantId);
  if (held.length && !force) throw quarantineError(held);
  await client.query("DELETE FROM shared.released_hosts WHERE host = ANY($1::text[])", [hosts]);
  return held;
}

/** Records that `hosts` were taken from tenant `tenantId` now. */
export async function releaseHosts(client: pg.Client, hosts: string[], tenantId: number): Promise<void> {
  if (hosts.length === 0) return;
  await client.query(
    `INSERT INTO shared.released_hosts (host, tenant_id, released_at)
     SELECT h, $2, now() FROM unnest($1::text[]) AS h
     ON CONFLICT (host) DO UPDATE SET tenant_id = excluded.tenant_id, released_at = excluded.released_at`,
    [hosts, tenantId],
  );
}

/**
 * A schema name never assigned before: drawn at random and checked against the registry of every
 * name ever assigned (and against existing schemas), drawing again on a collision.
 */
export async function unusedSchemaName(client: pg.Client): Promise<string> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const candidate = newTenantSchemaName();
    const { rows } = await client.query<{ free: boolean }>(`SELECT ${schemaNameFreeSql("$1")} AS free`, [candidate]);
    if (rows[0]!.free) return candidate;
  }
  throw new TenantCommandError("could not draw an unused schema name in 10 attempts (this should never happen): try again");
}

/** True when the schema name at this placeholder was never assigned and no schema has it. */
function schemaNameFreeSql(name: string): string {
  return `NOT EXISTS (SELECT 1 FROM shared.tenant_schemas WHERE schema_name = ${name}
                      UNION ALL SELECT 1 FROM pg_namespace WHERE nspname = ${name})`;
}

/** `values` as an SQL text[] literal, each escaped by the client. */
function textArrayLiteral(client: pg.Client, values: string[]): string {
  return `ARRAY[${values.map((v) => client.escapeLiteral(v)).join(", ")}]::text[]`;
}

/**
 * One statement (literals escaped by the client) that inserts the catalog rows of a tenant whose
 * schema is `schema`: the tenant, its registry row and its hosts, the first one primary.
 */
export function registerTenantSql(
  client: pg.Client,
  tenant: { slug: string; name: string; schema: string; hosts: string[] },
): string {
  const schema = client.escapeLiteral(tenant.schema);
  const hosts = textArrayLiteral(client, tenant.hosts);
  // One statement: the registry row and the tenant row reference each other.
  return `WITH t AS (INSERT INTO shared.tenants (slug, name, schema_name)
                  VALUES (${client.escapeLiteral(tenant.slug)}, ${client.escapeLiteral(tenant.name)}, ${schema}) RETURNING id),
     r AS (INSERT INTO shared.tenant_schemas (schema_name, tenant_id) SELECT ${schema}, id FROM t)
INSERT INTO shared.tenant_hosts (host, tenant_id, is_primary)
SELECT h.host, t.id, h.n = 1 FROM t, unnest(${hosts}) WITH ORDINALITY AS h(host, n);`;
}

export interface CreateTenantInput {
  slug: string;
  name: string;
  hosts: string[];
  /** Attach hosts even when recently removed from another tenant (stale caches may still send their visitors there). */
  force?: boolean;
  /** Told which hosts were attached despite their quarantine (only with force). */
  onForced?: (hosts: QuarantinedHost[]) => void;
  /** Claim a warm-pool slot when one is free (default); false always creates a new schema. */
  usePool?: boolean;
}

/**
 * Catalog rows and a schema at head, atomically: a warm-pool slot claimed with DML only when one is
 * free (`fromPool`), else a new schema `tenant_<key>` (a name never assigned before, recorded in the
 * registry) with the tenant tables at head and the ledger. The result carries the schema name.
 */
export async function createTenant(
  client: pg.Client,
  migrations: MigrationSet,
  input: CreateTenantInput,
  roles: AppRoleOptions = {},
): Promise<TenantInfo & { fromPool: boolean }> {
  const slugProblem = slugError(input.slug);
  if (slugProblem) throw new TenantCommandError(slugProblem);
  const name = input.name?.trim();
  if (!name) throw new TenantCommandError("a tenant needs a display name: --name \"Acme Inc.\"");
  if (name.length > 200) throw new TenantCommandError("the display name is longer than 200 characters");
  if (input.hosts.length === 0) {
    throw new TenantCommandError(`a tenant needs at least one host: --host ${input.slug}.example.com`);
  }
  const hosts = checkHosts(input.hosts);

  let fromPool = false;
  let info: TenantInfo | undefined;
  const creation = lockedTransaction(client, async (state) => {
    if (!state.exists) throw notInitializedError();
    const usePool = input.usePool !== false && state.pool;
    // Every check in one round trip: the head (O(1) in the fleet's size: counters kept with the
    // ledger, shared migration 0007_tenant_pool), the slug, the hosts' owners and quarantine, a
    // free pool slot (locked) and whether a freshly drawn schema name is unused.
    const candidate = newTenantSchemaName();
    const { rows } = await client.query<CreateChecks>(
      `SELECT s.tenant_count, s.entries,
              (SELECT json_build_object('purgeAfter', to_char(d.purge_after AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
               FROM shared.tenants t LEFT JOIN shared.deleted_tenants d ON d.tenant_id = t.id WHERE t.slug = $1) AS taken,
              (SELECT coalesce(json_agg(o), '[]') FROM (${hostOwnersSql("$2")}) o) AS owners,
              (SELECT coalesce(json_agg(q), '[]') FROM (${quarantinedHostsSql("$2", "NULL", "$3")}) q) AS quarantined,
              ${usePool ? `(${OLDEST_FREE_SLOT_SQL})` : "NULL"} AS slot,
              ${schemaNameFreeSql("$4")} AS candidate_free
       FROM (${fleetSummarySql(state)}) s`,
      [input.slug, hosts, STALENESS_BOUND_SECONDS, candidate],
    );
    const checks = rows[0]!;
    requireSummaryAtHead(fleetSummaryOf(checks), migrations, "create the tenant");
    if (checks.taken?.purgeAfter) {
      throw new TenantCommandError(
        `tenant ${input.slug} was deleted and is kept until ${checks.taken.purgeAfter}: restore it with ` +
          `\`npm run tenants -- restore-deleted ${input.slug}\`, or drop it now with \`npm run tenants -- delete ${input.slug} --now --yes\``,
      );
    }
    if (checks.taken) throw new TenantCommandError(`tenant ${input.slug} already exists`);
    if (checks.owners.length) throw hostOwnersError(checks.owners);
    if (checks.quarantined.length) {
      if (!input.force) throw quarantineError(checks.quarantined);
      input.onForced?.(checks.quarantined);
    }
    // The hosts are attached now: their release is forgotten.
    const forget = `DELETE FROM shared.released_hosts WHERE host = ANY(${textArrayLiteral(client, hosts)});`;
    if (checks.slot) {
      await client.query(forget);
      await claimPickedSlot(client, checks.slot, { slug: input.slug, name, hosts });
      fromPool = true;
      return;
    }
    const schema = checks.candidate_free ? candidate : await unusedSchemaName(client);
    const created = await createTenantSchema(client, schema, migrations.tenant, roles, [forget, registerTenantSql(client, { slug: input.slug, name, schema, hosts })], [
      `${TENANT_INFO_SQL} WHERE t.slug = ${client.escapeLiteral(input.slug)}`,
    ]);
    info = created.rows[0] as TenantInfo;
  });
  try {
    await creation;
  } catch (error) {
    // A database behind head may lack a table the checks read (shared.deleted_tenants before shared
    // migration 0008): then the refusal names the pending migrations, as the head check would.
    if (["42P01", "42703"].includes(sqlstate(error) ?? "")) {
      await lockedTransaction(client, () => requireAtHead(client, migrations, "create the tenant"));
    }
    throw error;
  }
  info ??= (await readTenantInfo(client, input.slug))!;
  return { ...info, fromPool };
}

/** createTenant's checks, read in one query. */
interface CreateChecks extends FleetSummaryRow {
  /** Set when the slug is taken; purgeAfter when by a deleted tenant in its retention. */
  taken: { purgeAfter: string | null } | null;
  owners: Array<{ host: string; slug: string }>;
  quarantined: QuarantinedHost[];
  /** A free pool slot, locked by this transaction. */
  slot: string | null;
  candidate_free: boolean;
}

function hostOwnersError(owners: Array<{ host: string; slug: string }>): TenantCommandError {
  return new TenantCommandError(
    owners.map((o) => `host ${o.host} already belongs to tenant ${o.slug}`).join("; ") +
      ": remove it there first (`npm run tenants -- hosts remove " + `${owners[0]!.slug} ${owners[0]!.host}\`)`,
  );
}

const TENANT_INFO_SQL = `
SELECT t.id::int AS id, t.slug, t.name, t.schema_name AS schema, t.status::text AS status,
       t.rate_limit_tier::text AS "rateLimitTier",
       CASE WHEN t.maintenance_message IS NULL THEN NULL
            ELSE json_build_object('message', t.maintenance_message,
                                   'since', to_char(t.maintenance_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
       END AS maintenance,
       to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS "createdAt",
       to_char(t.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS "updatedAt",
       (SELECT json_build_object(
                 'deletedAt', to_char(d.deleted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                 'purgeAfter', to_char(d.purge_after AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
        FROM shared.deleted_tenants d WHERE d.tenant_id = t.id) AS deleted,
       coalesce((SELECT json_agg(json_build_object('host', h.host, 'primary', h.is_primary)
                                 ORDER BY h.is_primary DESC, h.host)
                 FROM shared.tenant_hosts h WHERE h.tenant_id = t.id), '[]') AS hosts
FROM shared.tenants t`;

export async function listTenants(client: pg.Client): Promise<TenantInfo[]> {
  await requireInitialized(client);
  return (await client.query<TenantInfo>(`${TENANT_INFO_SQL} ORDER BY t.slug`)).rows;
}

export async function showTenant(client: pg.Client, slug: string): Promise<TenantInfo | undefined> {
  await requireInitialized(client);
  return readTenantInfo(client, slug);
}

async function readTenantInfo(client: pg.Client, slug: string): Promise<TenantInfo | undefined> {
  return (await client.query<TenantInfo>(`${TENANT_INFO_SQL} WHERE t.slug = $1`, [slug])).rows[0];
}

async function requireTenant(
  client: pg.Client,
  slug: string,
  options: { deleted?: "refuse" | "allow" } = {},
): Promise<{ id: number; schema: string; hosts: string[]; deleted: boolean }> {
  const problem = slugError(slug);
  if (problem) throw new TenantCommandError(problem);
  await requireInitialized(client);
  const { rows } = await client.query<{ id: number; schema: string; hosts: string[]; deleted: boolean }>(
    `SELECT t.id::int AS id, t.schema_name AS schema,
            coalesce(array_agg(h.host ORDER BY h.host) FILTER (WHERE h.host IS NOT NULL), '{}') AS hosts,
            EXISTS (SELECT 1 FROM shared.deleted_tenants d WHERE d.tenant_id = t.id) AS deleted
     FROM shared.tenants t LEFT JOIN shared.tenant_hosts h ON h.tenant_id = t.id
     WHERE t.slug = $1 GROUP BY t.id`,
    [slug],
  );
  if (!rows[0]) throw new TenantCommandError(`no tenant ${slug}: see \`npm run tenants -- list\``);
  // A deleted tenant stays as it was until restored or purged (restore-deleted puts its status back).
  if (rows[0].deleted && options.deleted !== "allow") await refuseIfDeleted(client, rows[0].id, slug);
  return rows[0];
}

/** Adds a host to a tenant; returns the hosts whose cached answers are now stale. */
export async function addHost(
  client: pg.Client,
  slug: string,
  host: string,
  options: Pick<CreateTenantInput, "force" | "onForced"> = {},
): Promise<string[]> {
  return lockedTransaction(client, () => addHostLocked(client, slug, host, options));
}

/** addHost's work, inside a transaction the caller holds under the migration lock. */
export async function addHostLocked(
  client: pg.Client,
  slug: string,
  host: string,
  options: Pick<CreateTenantInput, "force" | "onForced"> = {},
): Promise<string[]> {
  const [normalized] = checkHosts([host]);
  {
    const tenant = await requireTenant(client, slug);
    const owners = await hostOwners(client, [normalized!]);
    if (owners.length) {
      const owner = owners[0]!.slug;
      throw new TenantCommandError(
        owner === slug ? `tenant ${slug} already has host ${normalized}` : `host ${normalized} already belongs to tenant ${owner}`,
      );
    }
    const forced = await claimReleasedHosts(client, [normalized!], tenant.id, options.force ?? false);
    if (forced.length) options.onForced?.(forced);
    await client.query("INSERT INTO shared.tenant_hosts (host, tenant_id, is_primary) VALUES ($1, $2, $3)", [
      normalized,
      tenant.id,
      tenant.hosts.length === 0,
    ]);
    await client.query("UPDATE shared.tenants SET updated_at = now() WHERE id = $1", [tenant.id]);
    return [normalized!];
  }
}

/** Removes a host (never the last one); the next remaining host becomes primary if needed. */
export async function removeHost(client: pg.Client, slug: string, host: string): Promise<string[]> {
  const normalized = normalizeHost(host) ?? host;
  return lockedTransaction(client, async () => {
    // Allowed on a deleted tenant, even its last host: that is how a host is freed during the retention.
    const tenant = await requireTenant(client, slug, { deleted: "allow" });
    if (!tenant.hosts.includes(normalized)) throw new TenantCommandError(`tenant ${slug} has no host ${normalized}`);
    if (tenant.hosts.length === 1 && !tenant.deleted) {
      throw new TenantCommandError(
        `${normalized} is the only host of tenant ${slug}: add another host first, or delete the tenant`,
      );
    }
    await client.query("DELETE FROM shared.tenant_hosts WHERE host = $1", [normalized]);
    await releaseHosts(client, [normalized], tenant.id);
    await client.query(
      `UPDATE shared.tenant_hosts SET is_primary = true
       WHERE host = (SELECT min(host) FROM shared.tenant_hosts WHERE tenant_id = $1)
         AND NOT EXISTS (SELECT 1 FROM shared.tenant_hosts WHERE tenant_id = $1 AND is_primary)`,
      [tenant.id],
    );
    await client.query("UPDATE shared.tenants SET updated_at = now() WHERE id = $1", [tenant.id]);
    return [normalized];
  });
}

/** Suspends or resumes a tenant; returns its hosts (their cached answers are stale). */
export async function setTenantStatus(client: pg.Client, slug: string, status: "active" | "suspended"): Promise<string[]> {
  return lockedTransaction(client, async () => {
    const tenant = await requireTenant(client, slug);
    const { rowCount } = await client.query(
      "UPDATE shared.tenants SET status = $2, updated_at = now() WHERE id = $1 AND status <> $2",
      [tenant.id, status],
    );
    if (!rowCount) throw new TenantCommandError(`tenant ${slug} is already ${status}`);
    return tenant.hosts;
  });
}

/** The longest maintenance message (it is shown on every page of the tenant's hosts). */
export const MAINTENANCE_MESSAGE_MAX = 500;

/** What is wrong with a maintenance message, if anything. */
export function maintenanceMessageError(message: string): string | undefined {
  if (message.trim() === "") return "--message needs some text: what visitors of the tenant's hosts should read";
  if (message.length > MAINTENANCE_MESSAGE_MAX) return `--message is ${message.length} characters long: keep it to ${MAINTENANCE_MESSAGE_MAX}`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(message)) return "--message must be one line of text (no control characters or line breaks)";
  return undefined;
}

/**
 * Puts a tenant in maintenance (or gives it a new message and bypass token when it already is):
 * its hosts answer 503 tenant_maintenance with `message`, except to requests carrying the returned
 * bypass token. The catalog keeps only the token's SHA-256. Returns the token and the tenant's hosts.
 */
export async function startMaintenance(
  client: pg.Client,
  slug: string,
  message: string,
): Promise<{ token: string; hosts: string[]; renewed: boolean }> {
  const problem = maintenanceMessageError(message);
  if (problem) throw new TenantCommandError(problem);
  const token = randomBytes(32).toString("base64url");
  const hash = createHash("sha256").update(token, "utf8").digest("hex");
  return lockedTransaction(client, async () => {
    const tenant = await requireTenant(client, slug);
    const { rows } = await client.query<{ renewed: boolean }>(
      `UPDATE shared.tenants t
       SET maintenance_message = $2, maintenance_bypass_hash = $3, maintenance_since = coalesce(t.maintenance_since, now()), updated_at = now()
       FROM (SELECT maintenance_message IS NOT NULL AS renewed FROM shared.tenants WHERE id = $1) before
       WHERE t.id = $1 RETURNING before.renewed`,
      [tenant.id, message.trim(), hash],
    );
    return { token, hosts: tenant.hosts, renewed: rows[0]!.renewed };
  });
}

/** Takes a tenant out of maintenance; returns its hosts (their cached answers are stale). */
export async function endMaintenance(client: pg.Client, slug: string): Promise<string[]> {
  return lockedTransaction(client, async () => {
    const tenant = await requireTenant(client, slug);
    const { rowCount } = await client.query(
      `UPDATE shared.tenants SET maintenance_message = NULL, maintenance_bypass_hash = NULL, maintenance_since = NULL, updated_at = now()
       WHERE id = $1 AND maintenance_message IS NOT NULL`,
      [tenant.id],
    );
    if (!rowCount) throw new TenantCommandError(`tenant ${slug} is not in maintenance`);
    return tenant.hosts;
  });
}

/** Sets a tenant's request-rate tier; returns its hosts (their cached answers carry the tier). */
export async function setRateLimitTier(client: pg.Client, slug: string, tier: string): Promise<string[]> {
  if (!(RATE_LIMIT_TIERS as readonly string[]).includes(tier)) {
    throw new TenantCommandError(`unknown rate limit tier "${tier}": use ${RATE_LIMIT_TIERS.join(" or ")}`);
  }
  return lockedTransaction(client, async () => {
    const tenant = await requireTenant(client, slug);
    const { rowCount } = await client.query(
      "UPDATE shared.tenants SET rate_limit_tier = $2, updated_at = now() WHERE id = $1 AND rate_limit_tier <> $2",
      [tenant.id, tier],
    );
    if (!rowCount) throw new TenantCommandError(`tenant ${slug} is already on the ${tier} tier`);
    return tenant.hosts;
  });
}

/**
 * Renames a tenant: only its slug (a label) changes in the catalog; its schema, hosts and data stay.
 * Returns its hosts (their cached answers carry the old slug).
 */
export async function renameTenant(client: pg.Client, slug: string, newSlug: string): Promise<string[]> {
  const problem = slugError(newSlug);
  if (problem) throw new TenantCommandError(problem);
  return lockedTransaction(client, async () => {
    const tenant = await requireTenant(client, slug);
    if (newSlug === slug) throw new TenantCommandError(`tenant ${slug} already has that slug`);
    const taken = await client.query("SELECT 1 FROM shared.tenants WHERE slug = $1", [newSlug]);
    if (taken.rowCount) throw new TenantCommandError(`tenant ${newSlug} already exists: choose another slug`);
    await client.query("UPDATE shared.tenants SET slug = $2, updated_at = now() WHERE id = $1", [tenant.id, newSlug]);
    return tenant.hosts;
  });
}
