// Shared tables: the tenant catalog. They live in the `shared` schema of every database.
import { sql } from "drizzle-orm";
import { bigint, boolean, check, index, pgSchema, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";
import { SHARED_SCHEMA } from "../../tenancy/naming.ts";

export const shared = pgSchema(SHARED_SCHEMA);

export const tenantStatus = shared.enum("tenant_status", ["active", "suspended"]);

export const tenants = shared.table(
  "tenants",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    slug: text("slug").notNull().unique(),
    name: text("name").notNull(),
    schemaName: text("schema_name").notNull().unique(),
    status: tenantStatus("status").notNull().default("active"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    check("tenants_slug_format", sql`${t.slug} ~ '^[a-z][a-z0-9_]{0,55}$'`),
    check("tenants_schema_name_matches_slug", sql`${t.schemaName} = 'tenant_' || ${t.slug}`),
  ],
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
  },
  (t) => [
    index("tenant_hosts_tenant_id_idx").on(t.tenantId),
    uniqueIndex("tenant_hosts_one_primary_idx").on(t.tenantId).where(sql`${t.isPrimary}`),
    check("tenant_hosts_host_lowercase", sql`${t.host} = lower(${t.host})`),
  ],
);
