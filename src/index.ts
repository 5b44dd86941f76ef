import { Hono } from "hono";
import { requestId } from "hono/request-id";
import type { AppEnv } from "./env.ts";
import { AppError, errorResponse, onError } from "./errors/index.ts";
import { database } from "./middleware/database.ts";
import { healthRoutes } from "./routes/health.ts";

const app = new Hono<AppEnv>()
  .use(requestId())
  .use(database())
  .route("/", healthRoutes)
  .notFound((c) => errorResponse(c, new AppError("not_found", `No route for ${c.req.method} ${c.req.path}.`)))
  .onError(onError);

export type App = typeof app;
export default app;
