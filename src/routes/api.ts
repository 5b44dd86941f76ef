import { tenancy } from "../middleware/tenant.ts";
import { itemRoutes } from "./items.ts";
import { apiRouter } from "./openapi.ts";
import { tenantRoutes } from "./tenant.ts";
import { userRoutes } from "./users.ts";

/** Every tenant route: behind the tenancy middleware, validated with zod, described in OpenAPI. */
const tenantApi = apiRouter();
tenantApi.use(tenancy());
export const api = tenantApi.route("/", userRoutes).route("/", itemRoutes).route("/", tenantRoutes);

export const openApiDocument = api.getOpenAPIDocument({
  openapi: "3.0.3",
  info: {
    title: "edge-tenants example API",
    version: "0.1.0",
    description:
      "The FastAPI SQL tutorial's API, per tenant: the request's host names the tenant. Errors: " +
      "`{ error: { code, message, requestId } }`.",
  },
});
