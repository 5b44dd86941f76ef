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

export const tenantRoutes = apiRouter().openapi(currentTenant, (c) => {
  const { slug, name, status } = c.var.tenant;
  return c.json({ slug, name, status }, 200);
});
