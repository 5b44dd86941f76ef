import { authenticate } from "../auth/middleware.ts";
import { csrfGuard } from "../auth/csrf.ts";
import { tenancy } from "../middleware/tenant.ts";
import { pageRoutes } from "../pages/routes.tsx";
import { authRoutes } from "./auth.ts";
import { itemRoutes } from "./items.ts";
import { apiRouter } from "./openapi.ts";
import { tenantRoutes } from "./tenant.ts";
import { userRoutes } from "./users.ts";

/** Every tenant route: behind the tenancy middleware, validated with zod, described in OpenAPI. */
const tenantApi = apiRouter();
tenantApi.use(csrfGuard(), tenancy(), authenticate());
tenantApi.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
  type: "http",
  scheme: "bearer",
  description: "A token from POST /auth/token, valid only at the tenant (host) that issued it.",
});
tenantApi.openAPIRegistry.registerComponent("securitySchemes", "sessionCookie", {
  type: "apiKey",
  in: "cookie",
  name: "session",
  description: "The browser session set by the sign-in form (HttpOnly, Secure, SameSite=Lax, this host only).",
});
export const api = tenantApi.route("/", authRoutes).route("/", userRoutes).route("/", itemRoutes).route("/", tenantRoutes);
/** The pages (HTML forms) for browsers: the same tenancy and authentication, not in the OpenAPI document. */
tenantApi.route("/", pageRoutes);

export const openApiDocument = api.getOpenAPIDocument({
  openapi: "3.0.3",
  info: {
    title: "edge-tenants example API",
    version: "0.1.0",
    description:
      "The FastAPI SQL tutorial's API, per tenant: the request's host names the tenant. Errors: " +
      "`{ error: { code, message, requestId } }`.\n\n" +
      "Authentication: sign up with POST /users, get a bearer token from POST /auth/token and send it as " +
      "`Authorization: Bearer <token>`; browsers use the session cookie the sign-in form sets. A token or session " +
      "is valid only at the tenant that issued it (another tenant answers 401). GET /users is for admins.",
  },
});
