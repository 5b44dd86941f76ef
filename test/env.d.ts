// Bindings the worker tests receive from vitest.config.ts (injected by test/global-setup.ts).
declare namespace Cloudflare {
  interface Env {
    DATABASE_URL?: string;
    LOCAL_SQL_ENDPOINT?: string;
    TEST_OWNER_DATABASE_URL?: string;
    TEST_STATEMENT_LOG_URL?: string;
    /** TEST_DB_CLIENT=hyperdrive only: the Worker reaches its database through this (vitest.config.ts). */
    HYPERDRIVE?: Hyperdrive;
    SESSION_SECRET?: string;
    /** A real Rate Limiting binding, 5 per 60 s (vitest.config.ts). */
    TEST_TENANT_LIMITER_5: RateLimit;
  }
}
