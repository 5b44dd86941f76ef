// Shared tables: the tenant catalog. They live in the `shared` schema of every database.
import { sql } from "drizzle-orm";
import { bigint, boolean, check, foreignKey, index, jsonb, pgSchema, primaryKey, text, timestamp, unique, uniqueIndex } from "drizzle-orm/pg-core";
import { SCHEMA_NAME_PATTERN, SHARED_SCHEMA } from "../../tenancy/naming.ts";

export const shared = pgSchema(SHARED_SCHEMA);

export const tenantStatus = shared.enum("tenant_status", ["active", "suspended"]);

/**
 * A tenant's request-rate tier: which of the Worker's per-tenant Rate Limiting bindings counts its
 * requests (TENANT_LIMITER for standard, TENANT_LIMITER_HIGH for high; limits in wrangler.toml).
 */
export const RATE_LIMIT_TIERS = ["standard", "high"] as const;
export const rateLimitTier = shared.enum("rate_limit_tier", RATE_LIMIT_TIERS);

// Written unqualified (a bare column name) and from the one pattern in naming.ts.
const schemaNameFormat = sql.raw(`"schema_name" ~ '${SCHEMA_NAME_PATTERN.source}'`);

export const tenants = shared.table(
  "tenants",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    slug: text("slug").notNull().unique(),
    name: text("name").notNull(),
    /** Assigned once at creation and registered below; never derived from the slug. */
    schemaName: text("schema_name").notNull().unique(),
    status: tenantStatus("status").notNull().default("active"),
    rateLimitTier: rateLimitTier("rate_limit_tier").notNull().default("standard"),
    /** Set while the tenant is in maintenance (`tenants maintenance <slug> on`): what its hosts answer. */
    maintenanceMessage: text("maintenance_message"),
    /** SHA-256 (hex) of the operator's bypass token for this maintenance window; never the token. */
    maintenanceBypassHash: text("maintenance_bypass_hash"),
    maintenanceSince: timestamp("maintenance_since", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    check("tenants_slug_format", sql`${t.slug} ~ '^[a-z][a-z0-9_]{0,55}$'`),
    check("tenants_schema_name_format", schemaNameFormat),
    check(
      "tenants_maintenance_complete",
      sql`(${t.maintenanceMessage} IS NULL) = (${t.maintenanceBypassHash} IS NULL) AND (${t.maintenanceMessage} IS NULL) = (${t.maintenanceSince} IS NULL)`,
    ),
    // The registry row of this schema name must be this tenant's: a name registered for a tenant
    // that was deleted can never be given to another one.
    foreignKey({
      name: "tenants_schema_name_registered_fk",
      columns: [t.schemaName, t.id],
      foreignColumns: [tenantSchemas.schemaName, tenantSchemas.tenantId],
    }),
  ],
);

/**
 * Every tenant schema name ever assigned. A row is written when a tenant is created and never
 * deleted (delete sets `released_at`), so a schema name is never assigned twice: a stale cache
 * entry naming a deleted tenant's schema can never lead into another tenant's data.
 */
export const tenantSchemas = shared.table(
  "tenant_schemas",
  {
    schemaName: text("schema_name").primaryKey(),
    /**
     * The tenant it was assigned to (kept after that tenant is deleted, so no foreign key); null while
     * the schema is an unclaimed slot of the warm pool (shared.tenant_pool).
     */
    tenantId: bigint("tenant_id", { mode: "number" }),
    assignedAt: timestamp("assigned_at", { withTimezone: true }).notNull().defaultNow(),
    /** When the tenant was deleted and its schema dropped; null while it lives. */
    releasedAt: timestamp("released_at", { withTimezone: true }),
  },
  (t) => [
    check("tenant_schemas_schema_name_format", schemaNameFormat),
    unique("tenant_schemas_schema_name_tenant_id_unique").on(t.schemaName, t.tenantId),
  ],
);

/**
 * Hosts recently taken from a tenant (`hosts remove`, `delete`). Until the staleness bound has passed
 * since `released_at`, caches may still send the host's visitors to `tenant_id`, so the CLI refuses to
 * attach the host to any other tenant (unless forced). Attaching the host again removes its row.
 */
export const releasedHosts = shared.table(
  "released_hosts",
  {
    host: text("host").primaryKey(),
    tenantId: bigint("tenant_id", { mode: "number" }).notNull(),
    releasedAt: timestamp("released_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [check("released_hosts_host_lowercase", sql`${t.host} = lower(${t.host})`)],
);

export const tenantHosts = shared.table(
  "tenant_hosts",
  {
    host: text("host").primaryKey(),
    tenantId: bigint("tenant_id", { mode: "number" })
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
    isPrimary: boolean("is_primary").notNull().default(false),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    // A custom hostname registered with Cloudflare for SaaS (`hosts add --custom`); all null for
    // other hosts. The Worker serves such a host only while `custom_status` is 'active'. Columns of
    // this table (not a table of their own), so the app role's SELECT on it covers them.
    /** Cloudflare's id of the custom hostname. */
    customHostnameId: text("custom_hostname_id").unique(),
    /** The SaaS zone it was registered in. */
    customZoneId: text("custom_zone_id"),
    /** The hostname's status as Cloudflare last reported it (pending, active, moved, ...). */
    customStatus: text("custom_status"),
    /** Its certificate's status (initializing, pending_validation, active, ...). */
    customSslStatus: text("custom_ssl_status"),
    /** What the customer must publish to prove ownership, and the errors Cloudflare reported. */
    customVerification: jsonb("custom_verification"),
    customCheckedAt: timestamp("custom_checked_at", { withTimezone: true }),
  },
  (t) => [
    index("tenant_hosts_tenant_id_idx").on(t.tenantId),
    uniqueIndex("tenant_hosts_one_primary_idx").on(t.tenantId).where(sql`${t.isPrimary}`),
    check("tenant_hosts_host_lowercase", sql`${t.host} = lower(${t.host})`),
    check(
      "tenant_hosts_custom_complete",
      sql`(${t.customHostnameId} IS NULL) = (${t.customZoneId} IS NULL) AND (${t.customHostnameId} IS NULL) = (${t.customStatus} IS NULL) AND (${t.customHostnameId} IS NULL) = (${t.customCheckedAt} IS NULL)`,
    ),
  ],
);

/**
 * The warm pool: tenant schemas created and migrated ahead of time (`tenants pool fill`), each
 * registered in tenant_schemas with no tenant yet. Claiming a slot (the CLI's `create`, the Worker's
 * POST /signup) is DML only: set `claimed_at` (and `claim_token`, which the claiming transaction's
 * later statements check, so they act only on a slot this transaction claimed), insert the tenant and
 * host rows, and give the registry row its tenant.
 */
export const tenantPool = shared.table(
  "tenant_pool",
  {
    schemaName: text("schema_name").primaryKey(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    claimedAt: timestamp("claimed_at", { withTimezone: true }),
    claimToken: text("claim_token"),
  },
  (t) => [
    check("tenant_pool_schema_name_format", schemaNameFormat),
    check("tenant_pool_claim_complete", sql`(${t.claimedAt} IS NULL) = (${t.claimToken} IS NULL)`),
    index("tenant_pool_unclaimed_idx").on(t.createdAt).where(sql`${t.claimedAt} IS NULL`),
  ],
);

/**
 * Per tenant-track migration file and checksum, how many live schemas of the fleet (registry rows not
 * released: tenants and pool slots) the ledger records it for. Kept by triggers on the ledger and on
 * the registry in the same transactions that write them (migrations/shared/0007_tenant_pool.sql), so
 * the fleet's state is read in O(1) whatever the tenant count.
 */
export const ledgerCounts = shared.table(
  "ledger_counts",
  {
    migration: text("migration").notNull(),
    checksum: text("checksum").notNull(),
    schemas: bigint("schemas", { mode: "number" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.migration, t.checksum] })],
);

/** How many live schemas the fleet has (registry rows not released), kept by the same triggers. One row. */
export const fleetSize = shared.table(
  "fleet_size",
  {
    id: boolean("id").primaryKey().default(true),
    schemas: bigint("schemas", { mode: "number" }).notNull(),
  },
  (t) => [check("fleet_size_one_row", sql`${t.id}`)],
);

/**
 * Tenants deleted with a retention period (`tenants delete`): the tenant stays in the catalog,
 * suspended (its hosts answer 403 tenant_suspended), with its schema and data, until `purge_after`;
 * `tenants restore-deleted` removes the row and puts the status back; `tenants purge-deleted` drops
 * the tenant once `purge_after` has passed. Not readable by the app role (the Worker only sees the
 * tenant's status).
 */
export const deletedTenants = shared.table(
  "deleted_tenants",
  {
    tenantId: bigint("tenant_id", { mode: "number" })
      .primaryKey()
      .references(() => tenants.id, { onDelete: "cascade" }),
    deletedAt: timestamp("deleted_at", { withTimezone: true }).notNull().defaultNow(),
    /** From then on `purge-deleted` drops the tenant. */
    purgeAfter: timestamp("purge_after", { withTimezone: true }).notNull(),
    /** The status to restore (a tenant suspended before it was deleted comes back suspended). */
    statusBefore: tenantStatus("status_before").notNull(),
  },
  (t) => [
    index("deleted_tenants_purge_after_idx").on(t.purgeAfter),
    check("deleted_tenants_purge_after_deleted_at", sql`${t.purgeAfter} >= ${t.deletedAt}`),
  ],
);
