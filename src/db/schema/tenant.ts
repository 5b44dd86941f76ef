// Tenant tables, written once. `defineTenantTables` builds them for one PostgreSQL schema; the
// Worker binds them per tenant through `tenantTables` (memoized, size-bounded), and drizzle-kit
// sees them bound to the placeholder schema `tenant` (scripts/migrations/tenant-placeholder.ts).
// Nothing here is a ready-to-query global: handlers get tables from the request context.
import { relations, sql } from "drizzle-orm";
import { boolean, integer, pgSchema, serial, text, timestamp, type PgSchema } from "drizzle-orm/pg-core";
import { LruTtlCache } from "../../tenancy/cache.ts";

export function defineTenantTables(schema: PgSchema) {
  const itemStatus = schema.enum("item_status", ["draft", "published", "archived"]);
  /** What a user may do in their tenant: `admin` may also list every user. */
  const userRole = schema.enum("user_role", ["member", "admin"]);

  const users = schema.table("users", {
    id: serial("id").primaryKey(),
    email: text("email").notNull().unique(),
    fullName: text("full_name"),
    hashedPassword: text("hashed_password").notNull(),
    isActive: boolean("is_active").notNull().default(true),
    role: userRole("role").notNull().default("member"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true })
      .notNull()
      .defaultNow()
      .$onUpdate(() => sql`now()`),
  });

  const items = schema.table("items", {
    id: serial("id").primaryKey(),
    title: text("title").notNull(),
    description: text("description"),
    status: itemStatus("status").notNull().default("draft"),
    ownerId: integer("owner_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  });

  const usersRelations = relations(users, ({ many }) => ({ items: many(items) }));
  const itemsRelations = relations(items, ({ one }) => ({
    owner: one(users, { fields: [items.ownerId], references: [users.id] }),
  }));

  return { itemStatus, userRole, users, items, usersRelations, itemsRelations };
}

export type TenantTables = ReturnType<typeof defineTenantTables>;

const MAX_BOUND_TENANTS = 1_000;
const bound = new LruTtlCache<string, TenantTables>(MAX_BOUND_TENANTS);

/**
 * The tenant tables bound to one tenant schema (`tenant_<slug>`, from the catalog). Memoized with
 * LRU eviction, so an isolate serving many tenants keeps at most MAX_BOUND_TENANTS sets.
 */
export function tenantTables(schemaName: string): TenantTables {
  const hit = bound.get(schemaName);
  if (hit) return hit.value;
  const tables = defineTenantTables(pgSchema(schemaName));
  bound.set(schemaName, tables, Number.POSITIVE_INFINITY);
  return tables;
}
