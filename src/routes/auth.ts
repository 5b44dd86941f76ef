import { createRoute } from "@hono/zod-openapi";
import { requireUser } from "../auth/middleware.ts";
import { issueCredential, signIn } from "../auth/sign-in.ts";
import { apiRouter } from "./openapi.ts";
import { ErrorSchema, MeSchema, SignInSchema, TokenSchema, authResponses, errorResponses, signedIn } from "./schemas.ts";

const json = <T>(schema: T) => ({ "application/json": { schema } });

const createToken = createRoute({
  method: "post",
  path: "/auth/token",
  tags: ["auth"],
  summary: "Sign in: a bearer token for this tenant",
  description:
    "Checks the email and password of a user of this tenant (the host's). The token is valid only at this tenant's hosts, " +
    "for 24 hours. Attempts are limited per tenant and client address: over the limit, 429 `rate_limited` with `Retry-After`.",
  request: { body: { content: json(SignInSchema), required: true } },
  responses: {
    200: { description: "Signed in", content: json(TokenSchema) },
    401: { description: "Wrong email or password (`invalid_credentials`)", content: json(ErrorSchema) },
    ...errorResponses,
  },
});

const me = createRoute({
  method: "get",
  path: "/me",
  tags: ["auth"],
  summary: "The signed-in user",
  security: signedIn,
  responses: { 200: { description: "You", content: json(MeSchema) }, ...errorResponses, ...authResponses },
});

export const authRoutes = apiRouter()
  .openapi(createToken, async (c) => {
    const { email, password } = c.req.valid("json");
    const user = await signIn(c, email, password);
    const { value, expiresAt } = await issueCredential(c, user, "token");
    return c.json(
      { token: value, tokenType: "Bearer" as const, expiresAt: expiresAt.toISOString(), user: { id: user.id, email: user.email, role: user.role } },
      200,
    );
  })
  .openapi(me, (c) => {
    const { id, email, fullName, role } = requireUser(c);
    return c.json({ id, email, fullName, role }, 200);
  });
