import { createRoute } from "@hono/zod-openapi";
import { apiRouter } from "./openapi.ts";
import { TenantSchema, errorResponses } from "./schemas.ts";

const currentTenant = createRoute({
  method: "get",
  path: "/tenant",
  tags: ["tenant"],
  summary: "The current tenant's public information",
  responses: {
    200: { description: "The tenant this host belongs to", content: { "application/json": { schema: TenantSchema } } },
    ...errorResponses,
  },
});

export const tenantRoutes = apiRouter().openapi(currentTenant, async (c) => {
  // Touch the tenant's schema, so a tenant removed while caches still held it answers 403 here as
  // on every other route (and is evicted), instead of 200 until the memory TTL expires.
  const { users } = c.var.tables;
  await c.var.db.select({ id: users.id }).from(users).limit(0);
  const { slug, name, status } = c.var.tenant;
  return c.json({ slug, name, status }, 200);
});
