import { createRoute } from "@hono/zod-openapi";
import { asc, eq } from "drizzle-orm";
import { AppError, isUniqueViolation, sqlState } from "../errors/index.ts";
import { requireAdmin, requireSelfOrAdmin } from "../auth/middleware.ts";
import { hashPassword } from "../security/password.ts";
import { apiRouter } from "./openapi.ts";
import {
  ErrorSchema,
  ItemCreateSchema,
  ItemSchema,
  PageQuerySchema,
  UserCreateSchema,
  UserIdParamSchema,
  UserSchema,
  authResponses,
  errorResponses,
  forbiddenDescription,
  signedIn,
  itemJson,
  userJson,
} from "./schemas.ts";

const json = <T>(schema: T) => ({ "application/json": { schema } });
/** The common errors, plus 401 and the 403 of a user without the right. */
const protectedResponses = {
  ...errorResponses,
  ...authResponses,
  403: { description: forbiddenDescription, content: json(ErrorSchema) },
};

const createUser = createRoute({
  method: "post",
  path: "/users",
  tags: ["users"],
  summary: "Sign up: create a user (a member; an operator makes admins)",
  request: { body: { content: json(UserCreateSchema), required: true } },
  responses: {
    201: { description: "Created", content: json(UserSchema) },
    409: { description: "Email already registered", content: json(ErrorSchema) },
    ...errorResponses,
  },
});

const listUsers = createRoute({
  method: "get",
  path: "/users",
  tags: ["users"],
  summary: "List users with their items (admins only)",
  security: signedIn,
  request: { query: PageQuerySchema },
  responses: { 200: { description: "Users", content: json(UserSchema.array()) }, ...protectedResponses },
});

const getUser = createRoute({
  method: "get",
  path: "/users/{userId}",
  tags: ["users"],
  summary: "Get a user with their items (yourself, or anyone for an admin)",
  security: signedIn,
  request: { params: UserIdParamSchema },
  responses: {
    200: { description: "The user", content: json(UserSchema) },
    404: { description: "No such user", content: json(ErrorSchema) },
    ...protectedResponses,
  },
});

const createItem = createRoute({
  method: "post",
  path: "/users/{userId}/items",
  tags: ["items"],
  summary: "Create an item owned by a user (yourself, or anyone for an admin)",
  security: signedIn,
  request: { params: UserIdParamSchema, body: { content: json(ItemCreateSchema), required: true } },
  responses: {
    201: { description: "Created", content: json(ItemSchema) },
    404: { description: "No such user", content: json(ErrorSchema) },
    ...protectedResponses,
  },
});

function userNotFound(id: number): AppError {
  return new AppError("user_not_found", `No user ${id}.`);
}

/** The FastAPI SQL tutorial's user endpoints; tenant data only through c.var.db / c.var.tables. */
export const userRoutes = apiRouter()
  .openapi(createUser, async (c) => {
    const input = c.req.valid("json");
    const { users } = c.var.tables;
    try {
      const [user] = await c.var.db
        .insert(users)
        .values({ email: input.email, fullName: input.fullName ?? null, hashedPassword: await hashPassword(input.password) })
        .returning();
      return c.json(userJson(user!), 201);
    } catch (error) {
      // By SQLSTATE and the constraint's base name (on Citus the name carries a shard id).
      if (isUniqueViolation(error, "users_email_unique")) {
        throw new AppError("email_taken", `A user with email ${input.email} already exists.`);
      }
      throw error;
    }
  })
  .openapi(listUsers, async (c) => {
    requireAdmin(c);
    const { skip, limit } = c.req.valid("query");
    const { users } = c.var.tables;
    const rows = await c.var.db.query.users.findMany({
      with: { items: { orderBy: (items, { asc }) => [asc(items.id)] } },
      orderBy: [asc(users.id)],
      offset: skip,
      limit,
    });
    return c.json(rows.map(userJson), 200);
  })
  .openapi(getUser, async (c) => {
    const { userId } = c.req.valid("param");
    requireSelfOrAdmin(c, userId);
    const { users } = c.var.tables;
    const user = await c.var.db.query.users.findFirst({
      where: eq(users.id, userId),
      with: { items: { orderBy: (items, { asc }) => [asc(items.id)] } },
    });
    if (!user) throw userNotFound(userId);
    return c.json(userJson(user), 200);
  })
  .openapi(createItem, async (c) => {
    const { userId } = c.req.valid("param");
    requireSelfOrAdmin(c, userId);
    const input = c.req.valid("json");
    const { items } = c.var.tables;
    try {
      const [item] = await c.var.db
        .insert(items)
        .values({ title: input.title, description: input.description ?? null, status: input.status, ownerId: userId })
        .returning();
      return c.json(itemJson(item!), 201);
    } catch (error) {
      if (sqlState(error) === "23503") throw userNotFound(userId);
      throw error;
    }
  });
