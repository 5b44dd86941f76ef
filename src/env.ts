import { z } from "zod";
import type { TenantDatabase } from "./db/client.ts";
import type { TenantTables } from "./db/schema/tenant.ts";
import { isValidSchemaName, normalizeHost } from "./tenancy/naming.ts";
import { DEFAULT_TTL_SECONDS } from "./tenancy/ttl.ts";
import type { RequestTelemetry } from "./telemetry.ts";
import type { ResolvedTenant } from "./tenancy/resolve.ts";
import type { Authentication } from "./auth/middleware.ts";

const seconds = (name: string, fallback: number, min = 1) =>
  z.coerce
    .number({ error: `${name} must be a number of seconds` })
    .int(`${name} must be a whole number of seconds`)
    .min(min, `${name} must be at least ${min}`)
    .default(fallback);

/** Worker configuration, parsed once per environment at the fetch boundary. */
export const WorkerConfigSchema = z.object({
  /** The database for the default client (neon-http). Not needed when a HYPERDRIVE binding exists. */
  DATABASE_URL: z
    .string({ error: "DATABASE_URL must be a postgres:// or postgresql:// connection string" })
    .regex(/^postgres(ql)?:\/\//, "DATABASE_URL must be a postgres:// or postgresql:// connection string")
    .optional(),
  /**
   * A Cloudflare Hyperdrive binding (`[[hyperdrive]]` in wrangler.toml): when it exists, the Worker
   * reaches the database through it with a TCP driver instead of Neon's HTTP endpoint
   * (docs/hyperdrive.md).
   */
  HYPERDRIVE: z
    .custom<Hyperdrive>(
      (value) => typeof value === "object" && value !== null && typeof (value as { connectionString?: unknown }).connectionString === "string",
      { error: "HYPERDRIVE must be a Hyperdrive binding ([[hyperdrive]] in wrangler.toml, with a connection string)" },
    )
    .optional(),
  /**
   * Local mode only: the URL of the local SQL-over-HTTP endpoint (`npm run dev` sets it). Production
   * never has it, so the driver talks to Neon.
   */
  LOCAL_SQL_ENDPOINT: z.url({ error: "LOCAL_SQL_ENDPOINT must be a URL such as http://127.0.0.1:4445/sql" }).optional(),
  /** How long an isolate trusts its own memory of a host's tenant. */
  TENANT_MEMORY_TTL_SECONDS: seconds("TENANT_MEMORY_TTL_SECONDS", DEFAULT_TTL_SECONDS.memory),
  /** ... and of a host that has no tenant. */
  TENANT_NEGATIVE_TTL_SECONDS: seconds("TENANT_NEGATIVE_TTL_SECONDS", DEFAULT_TTL_SECONDS.negative),
  /** KV entries for known hosts (KV's minimum is 60). */
  TENANT_KV_TTL_SECONDS: seconds("TENANT_KV_TTL_SECONDS", DEFAULT_TTL_SECONDS.kv, 60),
  /**
   * The one host that answers `GET /health` (e.g. the apex or health.example.com). Unset: no host
   * does. On every other host `/health` is an ordinary (tenant) path.
   */
  HEALTH_HOST: z
    .string()
    .transform((value, ctx) => {
      const host = normalizeHost(value);
      if (!host) ctx.addIssue({ code: "custom", message: `HEALTH_HOST "${value}" is not a DNS name (e.g. health.example.com)` });
      return host ?? "";
    })
    .optional(),
  /**
   * The key that signs session cookies, API tokens and CSRF tokens (HMAC-SHA256): at least 32
   * characters of randomness. A secret: `wrangler secret put SESSION_SECRET` in production;
   * `npm run dev` makes one per start. Unset: sign-in answers 500 misconfigured.
   */
  SESSION_SECRET: z
    .string()
    .min(32, "SESSION_SECRET must be at least 32 characters (e.g. `openssl rand -hex 32`)")
    .optional(),
  /**
   * The bare domain (e.g. example.com; locally localhost): it shows the public landing page
   * instead of answering as an unknown tenant. Unset: no host does.
   */
  APEX_HOST: z
    .string()
    .transform((value, ctx) => {
      const host = normalizeHost(value);
      if (!host) ctx.addIssue({ code: "custom", message: `APEX_HOST "${value}" is not a DNS name (e.g. example.com)` });
      return host ?? "";
    })
    .optional(),
  /**
   * Benchmarks only, and only in local mode (LOCAL_SQL_ENDPOINT set; otherwise ignored with a
   * warning): `cache` (default) resolves through memory, KV and the catalog; `catalog` queries the
   * catalog on every request (the naive approach); `fixed:<schema>` skips resolution entirely.
   */
  TENANT_RESOLUTION: z
    .string()
    .refine(
      (mode) => mode === "cache" || mode === "catalog" || (mode.startsWith("fixed:") && isValidSchemaName(mode.slice(6))),
      "TENANT_RESOLUTION is cache, catalog or fixed:<schema> (a tenant schema name such as tenant_abcdefghijkl)",
    )
    .default("cache"),
  /**
   * Benchmarks only, and only in local mode (ignored with a warning otherwise): `off` turns off the
   * per-request log line, the metrics data point and the per-tenant request limit, to measure them.
   */
  REQUEST_TELEMETRY: z.enum(["on", "off"], { error: "REQUEST_TELEMETRY is on or off" }).default("on"),
}).superRefine((config, ctx) => {
  if (!config.DATABASE_URL && !config.HYPERDRIVE) {
    ctx.addIssue({
      code: "custom",
      path: ["DATABASE_URL"],
      message:
        "DATABASE_URL is not set (and there is no HYPERDRIVE binding): run `wrangler secret put DATABASE_URL` (production on Neon), " +
        "add a [[hyperdrive]] binding (docs/hyperdrive.md) or run `npm run dev` (local)",
    });
  }
});

export type WorkerConfig = z.infer<typeof WorkerConfigSchema>;

export type AppEnv = {
  /** `Env` comes from `wrangler types`; the strings are secrets/vars, checked by the schema above. */
  Bindings: Env & Partial<Record<keyof WorkerConfig, string>>;
  Variables: {
    config: WorkerConfig;
    requestId: string;
    /** The request's tenant, set by the tenancy middleware from the catalog. */
    tenant: ResolvedTenant;
    /** Drizzle (neon-http, or node-postgres through Hyperdrive), bound to this tenant's tables only. */
    db: TenantDatabase;
    /** This tenant's tables (the tenant's schema, from the catalog), for the query builder. */
    tables: TenantTables;
    /** Who is asking, from a session cookie or a bearer token checked against this tenant. */
    auth: Authentication;
    /** This request's counters for its log line and data point (src/telemetry.ts). */
    telemetry: RequestTelemetry;
  };
};
