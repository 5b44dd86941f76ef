// What drizzle-kit sees of the tenant track: the tenant tables bound to the placeholder schema
// `tenant`, which never exists in a database. The runner rewrites it to each `tenant_<slug>`.
import { pgSchema } from "drizzle-orm/pg-core";
import { defineTenantTables } from "../../src/db/schema/tenant.ts";
import { PLACEHOLDER_SCHEMA } from "../../src/tenancy/naming.ts";

export const { itemStatus, userRole, users, items } = defineTenantTables(pgSchema(PLACEHOLDER_SCHEMA));
