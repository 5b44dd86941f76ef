import { swaggerUI } from "@hono/swagger-ui";
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import type { AppEnv } from "./env.ts";
import { AppError, errorResponse, onError } from "./errors/index.ts";
import { workerConfig } from "./middleware/config.ts";
import { api, openApiDocument } from "./routes/api.ts";
import { healthRoutes } from "./routes/health.ts";

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
