// The API's request and response shapes (zod), from which the OpenAPI document is generated.
import { z } from "@hono/zod-openapi";

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "user_not_found" }),
      message: z.string(),
      requestId: z.string(),
      details: z.unknown().optional(),
    }),
  })
  .openapi("Error");

export const ItemStatusSchema = z.enum(["draft", "published", "archived"]).openapi("ItemStatus");

export const ItemSchema = z
  .object({
    id: z.number().int(),
    title: z.string(),
    description: z.string().nullable(),
    status: ItemStatusSchema,
    ownerId: z.number().int(),
    createdAt: z.string().openapi({ format: "date-time" }),
  })
  .openapi("Item");

export const ItemCreateSchema = z
  .object({
    title: z.string().trim().min(1, "title cannot be empty").max(200),
    description: z.string().max(2000).nullable().optional(),
    status: ItemStatusSchema.optional(),
  })
  .openapi("ItemCreate");

export const UserSchema = z
  .object({
    id: z.number().int(),
    email: z.string(),
    fullName: z.string().nullable(),
    isActive: z.boolean(),
    createdAt: z.string().openapi({ format: "date-time" }),
    items: z.array(ItemSchema),
  })
  .openapi("User");

export const UserCreateSchema = z
  .object({
    email: z.email("email must be an email address").max(320).toLowerCase(),
    password: z.string().min(8, "password must be at least 8 characters").max(200),
    fullName: z.string().trim().max(200).nullable().optional(),
  })
  .openapi("UserCreate");

export const SignInSchema = z
  .object({
    email: z.string().max(320).openapi({ example: "wile@acme.test" }),
    password: z.string().max(200).openapi({ example: "demo-password" }),
  })
  .openapi("SignIn");

export const TokenSchema = z
  .object({
    token: z.string().openapi({ description: "Send as `Authorization: Bearer <token>`, at this tenant's host only." }),
    tokenType: z.literal("Bearer"),
    expiresAt: z.string().openapi({ format: "date-time" }),
    user: z.object({ id: z.number().int(), email: z.string(), role: z.enum(["member", "admin"]) }),
  })
  .openapi("Token");

export const MeSchema = z
  .object({ id: z.number().int(), email: z.string(), fullName: z.string().nullable(), role: z.enum(["member", "admin"]) })
  .openapi("Me");

export const ItemIdParamSchema = z.object({
  itemId: z.coerce.number().int().min(1).max(2_147_483_647).openapi({ param: { name: "itemId", in: "path" }, example: 1 }),
});

export const ItemUpdateSchema = z.object({ status: ItemStatusSchema }).openapi("ItemUpdate");

export const TenantSchema = z
  .object({ slug: z.string(), name: z.string(), status: z.enum(["active", "suspended"]) })
  .openapi("Tenant");

export const PageQuerySchema = z.object({
  skip: z.coerce.number().int().min(0).default(0).openapi({ example: 0 }),
  limit: z.coerce.number().int().min(1).max(100).default(100).openapi({ example: 100 }),
});

export const UserIdParamSchema = z.object({
  userId: z.coerce.number().int().min(1).max(2_147_483_647).openapi({ param: { name: "userId", in: "path" }, example: 1 }),
});

/** Routes that need a signed-in user: who they accept, and what they answer otherwise. */
export const signedIn: Array<Record<string, string[]>> = [{ bearerAuth: [] }, { sessionCookie: [] }];
export const authResponses = {
  401: {
    description:
      "No credential, or one that is not valid at this tenant (`unauthenticated`): expired, tampered with, or issued at another tenant's host",
    content: { "application/json": { schema: ErrorSchema } },
  },
} as const;
/** 403 for a signed-in user without the right (`forbidden`), beside the tenant's own 403s. */
export const forbiddenDescription =
  "Not allowed for this user (`forbidden`), or an unknown (`tenant_not_found`) or suspended (`tenant_suspended`) tenant";

export const errorResponses = {
  400: { description: "Invalid input (`validation_error`) or host (`invalid_host`)", content: { "application/json": { schema: ErrorSchema } } },
  403: { description: "Unknown (`tenant_not_found`) or suspended (`tenant_suspended`) tenant", content: { "application/json": { schema: ErrorSchema } } },
  429: {
    description:
      "Too many lookups of hosts not known yet from this client, or too many sign-in attempts (`rate_limited`); the tenant over its " +
      "plan's request rate (`tenant_rate_limited`); `Retry-After` says when to retry",
    content: { "application/json": { schema: ErrorSchema } },
  },
  500: {
    description: "A bug (`internal_error`), missing configuration (`misconfigured`), or an answer over the database's response limit (`response_too_large`)",
    content: { "application/json": { schema: ErrorSchema } },
  },
  503: {
    description:
      "Database unreachable (`database_unavailable`), a statement over its time limit (`statement_timeout`), the tenant's schema not yet migrated for this code (`tenant_schema_outdated`), or the tenant in maintenance (`tenant_maintenance`, its operator's message); `Retry-After` says when to retry",
    content: { "application/json": { schema: ErrorSchema } },
  },
} as const;

type ItemRow = { id: number; title: string; description: string | null; status: "draft" | "published" | "archived"; ownerId: number; createdAt: Date };
type UserRow = { id: number; email: string; fullName: string | null; isActive: boolean; createdAt: Date; items?: ItemRow[] };

/** The documented fields only: a column added to the table later never leaks into responses. */
export function itemJson(item: ItemRow): z.infer<typeof ItemSchema> {
  return {
    id: item.id,
    title: item.title,
    description: item.description,
    status: item.status,
    ownerId: item.ownerId,
    createdAt: item.createdAt.toISOString(),
  };
}

export function userJson(user: UserRow): z.infer<typeof UserSchema> {
  return {
    id: user.id,
    email: user.email,
    fullName: user.fullName,
    isActive: user.isActive,
    createdAt: user.createdAt.toISOString(),
    items: (user.items ?? []).map(itemJson),
  };
}
