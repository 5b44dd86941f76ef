import { swaggerUI } from "@hono/swagger-ui";
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import type { AppEnv } from "./env.ts";
import { AppError, errorResponse, onError } from "./errors/index.ts";
import { workerConfig } from "./middleware/database.ts";
import { tenancy } from "./middleware/tenant.ts";
import { healthRoutes } from "./routes/health.ts";
import { itemRoutes } from "./routes/items.ts";
import { apiRouter } from "./routes/openapi.ts";
import { tenantRoutes } from "./routes/tenant.ts";
import { userRoutes } from "./routes/users.ts";

/** Every tenant route: behind the tenancy middleware, described in the OpenAPI document. */
const tenantApi = apiRouter();
tenantApi.use(tenancy());
export const api = tenantApi.route("/", userRoutes).route("/", itemRoutes).route("/", tenantRoutes);

const openApiDocument = api.getOpenAPIDocument({
  openapi: "3.0.3",
  info: {
    title: "edge-tenants example API",
    version: "0.1.0",
    description:
      "The FastAPI SQL tutorial's API, per tenant: the request's host names the tenant. Errors: " +
      "`{ error: { code, message, requestId } }`.",
  },
});

const app = new Hono<AppEnv>()
  .use(requestId())
  .use(workerConfig())
  .route("/", healthRoutes)
  .get("/openapi.json", (c) => c.json(openApiDocument))
  .get("/docs", swaggerUI({ url: "/openapi.json", title: "edge-tenants API" }))
  .route("/", api)
  .notFound((c) => errorResponse(c, new AppError("not_found", `No route for ${c.req.method} ${c.req.path}.`)))
  .onError(onError);

export type App = typeof app;
export default app;
