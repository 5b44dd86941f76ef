import { createRoute } from "@hono/zod-openapi";
import { asc } from "drizzle-orm";
import { apiRouter } from "./openapi.ts";
import { ItemSchema, PageQuerySchema, errorResponses, itemJson } from "./schemas.ts";

const listItems = createRoute({
  method: "get",
  path: "/items",
  tags: ["items"],
  summary: "List items",
  request: { query: PageQuerySchema },
  responses: {
    200: { description: "Items", content: { "application/json": { schema: ItemSchema.array() } } },
    ...errorResponses,
  },
});

export const itemRoutes = apiRouter().openapi(listItems, async (c) => {
  const { skip, limit } = c.req.valid("query");
  const { items } = c.var.tables;
  const rows = await c.var.db.select().from(items).orderBy(asc(items.id)).offset(skip).limit(limit);
  return c.json(rows.map(itemJson), 200);
});
