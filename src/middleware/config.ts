import { createMiddleware } from "hono/factory";
import { configureDriver } from "../db/client.ts";
import { WorkerConfigSchema, type AppEnv, type WorkerConfig } from "../env.ts";
import { AppError } from "../errors/index.ts";

const parsed = new WeakMap<object, WorkerConfig>();

/** Parses the configuration; benchmark-only settings are dropped (with a warning) outside local mode. */
function parseConfig(env: object): WorkerConfig {
  const result = WorkerConfigSchema.safeParse(env);
  if (!result.success) {
    throw new AppError("misconfigured", result.error.issues.map((issue) => issue.message).join("; "));
  }
  let config = result.data;
  if (config.TENANT_RESOLUTION !== "cache" && !config.LOCAL_SQL_ENDPOINT) {
    console.warn(
      `TENANT_RESOLUTION=${config.TENANT_RESOLUTION} is ignored: it is for local benchmarks only ` +
        "(LOCAL_SQL_ENDPOINT set); tenants are resolved through the caches and the catalog. Remove it.",
    );
    config = { ...config, TENANT_RESOLUTION: "cache" };
  }
  if (config.REQUEST_TELEMETRY === "off" && !config.LOCAL_SQL_ENDPOINT) {
    console.warn("REQUEST_TELEMETRY=off is ignored: it is for local benchmarks only (LOCAL_SQL_ENDPOINT set). Remove it.");
    config = { ...config, REQUEST_TELEMETRY: "on" };
  }
  return config;
}

/**
 * Parses the Worker's configuration once per environment object, puts it on `c.var.config` and
 * points the database driver where it says.
 */
export function workerConfig() {
  return createMiddleware<AppEnv>(async function workerConfigMiddleware(c, next) {
    let config = parsed.get(c.env);
    if (!config) {
      config = parseConfig(c.env);
      parsed.set(c.env, config);
    }
    configureDriver(config);
    c.set("config", config);
    await next();
  });
}
