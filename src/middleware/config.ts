import { createMiddleware } from "hono/factory";
import { configureDriver } from "../db/client.ts";
import { WorkerConfigSchema, type AppEnv, type WorkerConfig } from "../env.ts";
import { AppError } from "../errors/index.ts";

const parsed = new WeakMap<object, WorkerConfig>();

/**
 * Parses the Worker's configuration once per environment object, puts it on `c.var.config` and
 * points the database driver where it says.
 */
export function workerConfig() {
  return createMiddleware<AppEnv>(async function workerConfigMiddleware(c, next) {
    let config = parsed.get(c.env);
    if (!config) {
      const result = WorkerConfigSchema.safeParse(c.env);
      if (!result.success) {
        throw new AppError("misconfigured", result.error.issues.map((issue) => issue.message).join("; "));
      }
      config = result.data;
      parsed.set(c.env, config);
    }
    configureDriver(config);
    c.set("config", config);
    await next();
  });
}
