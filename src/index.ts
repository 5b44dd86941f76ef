import { Hono } from "hono";
import { contextStorage } from "hono/context-storage";
import { requestId } from "hono/request-id";
import type { AppEnv } from "./env.ts";
import { AppError, errorResponse, lastResortResponse } from "./errors/index.ts";
import { workerConfig } from "./middleware/config.ts";
import { answerError } from "./middleware/tenant.ts";
import { requestConnections } from "./db/client.ts";
import { api, openApiDocument } from "./routes/api.ts";
import { healthRoutes } from "./routes/health.ts";
import { requestTelemetry } from "./telemetry.ts";
import { apexRoutes } from "./pages/apex.tsx";

/**
 * The API reference: Swagger UI from the Worker's own static assets (public/vendor/swagger-ui, the
 * pinned swagger-ui-dist package), reading /openapi.json. No request leaves the site.
 */
const DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edge-tenants API</title>
<link rel="stylesheet" href="/vendor/swagger-ui/swagger-ui.css">
</head>
<body>
<main id="swagger-ui"></main>
<script src="/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', validatorUrl: null, deepLinking: true });
</script>
</body>
</html>
`;

export const app = new Hono<AppEnv>()
  .use(requestId())
  .use(contextStorage())
  .use(requestConnections())
  .use(requestTelemetry())
  .use(workerConfig())
  .route("/", healthRoutes)
  .route("/", apexRoutes)
  .get("/openapi.json", (c) => c.json(openApiDocument))
  .get("/docs", (c) => c.html(DOCS_HTML))
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
