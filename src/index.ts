import { swaggerUI } from "@hono/swagger-ui";
import { Hono } from "hono";
import { contextStorage } from "hono/context-storage";
import { requestId } from "hono/request-id";
import type { AppEnv } from "./env.ts";
import { AppError, errorResponse, lastResortResponse } from "./errors/index.ts";
import { workerConfig } from "./middleware/config.ts";
import { answerError } from "./middleware/tenant.ts";
import { api, openApiDocument } from "./routes/api.ts";
import { healthRoutes } from "./routes/health.ts";
import { requestTelemetry } from "./telemetry.ts";

export const app = new Hono<AppEnv>()
  .use(requestId())
  .use(contextStorage())
  .use(requestTelemetry())
  .use(workerConfig())
  .route("/", healthRoutes)
  .get("/openapi.json", (c) => c.json(openApiDocument))
  .get("/docs", swaggerUI({ url: "/openapi.json", title: "edge-tenants API" }))
  .route("/", api)
  .notFound((c) => errorResponse(c, new AppError("not_found", `No route for ${c.req.method} ${c.req.path}.`)))
  .onError(answerError);

export type App = typeof app;

/** The Worker: the app, inside an outer guard so no error ever reaches the runtime's bare 500. */
export default {
  async fetch(request: Request, env: object, ctx: ExecutionContext): Promise<Response> {
    try {
      return await app.fetch(request, env as AppEnv["Bindings"], ctx);
    } catch (error) {
      return lastResortResponse(error, request);
    }
  },
};
