import { createMiddleware } from "hono/factory";
import { createDatabase } from "../db/client.ts";
import { WorkerConfigSchema, type AppEnv } from "../env.ts";
import { AppError } from "../errors/index.ts";

/** Parses the Worker's configuration once per request and puts a Drizzle client on `c.var.db`. */
export function database() {
  return createMiddleware<AppEnv>(async function databaseMiddleware(c, next) {
    const parsed = WorkerConfigSchema.safeParse(c.env);
    if (!parsed.success) {
      throw new AppError("misconfigured", parsed.error.issues.map((issue) => issue.message).join("; "));
    }
    c.set("config", parsed.data);
    c.set("db", createDatabase(parsed.data));
    await next();
  });
}
