import { createRoute } from "@hono/zod-openapi";
import { and, asc, eq, type SQL } from "drizzle-orm";
import { requireUser, type AuthUser } from "../auth/middleware.ts";
import { AppError } from "../errors/index.ts";
import type { TenantTables } from "../db/schema/tenant.ts";
import { apiRouter } from "./openapi.ts";
import {
  ErrorSchema,
  ItemIdParamSchema,
  ItemSchema,
  ItemUpdateSchema,
  PageQuerySchema,
  authResponses,
  errorResponses,
  forbiddenDescription,
  itemJson,
  signedIn,
} from "./schemas.ts";

const json = <T>(schema: T) => ({ "application/json": { schema } });
const protectedResponses = {
  ...errorResponses,
  ...authResponses,
  403: { description: forbiddenDescription, content: json(ErrorSchema) },
};

const listItems = createRoute({
  method: "get",
  path: "/items",
  tags: ["items"],
  summary: "List your items (an admin: everyone's)",
  security: signedIn,
  request: { query: PageQuerySchema },
  responses: { 200: { description: "Items", content: json(ItemSchema.array()) }, ...protectedResponses },
});

const updateItem = createRoute({
  method: "patch",
  path: "/items/{itemId}",
  tags: ["items"],
  summary: "Change an item's status (yours, or any for an admin)",
  security: signedIn,
  request: { params: ItemIdParamSchema, body: { content: json(ItemUpdateSchema), required: true } },
  responses: {
    200: { description: "The changed item", content: json(ItemSchema) },
    404: { description: "No such item of yours (`item_not_found`)", content: json(ErrorSchema) },
    ...protectedResponses,
  },
});

const deleteItem = createRoute({
  method: "delete",
  path: "/items/{itemId}",
  tags: ["items"],
  summary: "Delete an item (yours, or any for an admin)",
  security: signedIn,
  request: { params: ItemIdParamSchema },
  responses: {
    204: { description: "Deleted" },
    404: { description: "No such item of yours (`item_not_found`)", content: json(ErrorSchema) },
    ...protectedResponses,
  },
});

/** Items this user may see and change: their own; an admin's, every item of the tenant. */
export function visibleItems(items: TenantTables["items"], user: AuthUser, extra?: SQL): SQL | undefined {
  const own = user.role === "admin" ? undefined : eq(items.ownerId, user.id);
  return own && extra ? and(own, extra) : (own ?? extra);
}

export const itemRoutes = apiRouter()
  .openapi(listItems, async (c) => {
    const user = requireUser(c);
    const { skip, limit } = c.req.valid("query");
    const { items } = c.var.tables;
    const rows = await c.var.db.select().from(items).where(visibleItems(items, user)).orderBy(asc(items.id)).offset(skip).limit(limit);
    return c.json(rows.map(itemJson), 200);
  })
  .openapi(updateItem, async (c) => {
    const user = requireUser(c);
    const { itemId } = c.req.valid("param");
    const { status } = c.req.valid("json");
    const { items } = c.var.tables;
    const [item] = await c.var.db.update(items).set({ status }).where(visibleItems(items, user, eq(items.id, itemId))).returning();
    if (!item) throw new AppError("item_not_found", `No item ${itemId} of yours.`);
    return c.json(itemJson(item), 200);
  })
  .openapi(deleteItem, async (c) => {
    const user = requireUser(c);
    const { itemId } = c.req.valid("param");
    const { items } = c.var.tables;
    const [item] = await c.var.db.delete(items).where(visibleItems(items, user, eq(items.id, itemId))).returning({ id: items.id });
    if (!item) throw new AppError("item_not_found", `No item ${itemId} of yours.`);
    return c.body(null, 204);
  });
