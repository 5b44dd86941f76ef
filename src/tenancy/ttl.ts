/**
 * The Worker's default cache lifetimes, in seconds (TENANT_MEMORY_TTL_SECONDS,
 * TENANT_NEGATIVE_TTL_SECONDS, TENANT_KV_TTL_SECONDS). The CLI's staleness bound
 * (scripts/tenants/staleness.ts) is computed from the same numbers.
 */
export const DEFAULT_TTL_SECONDS = { memory: 30, negative: 10, kv: 300 } as const;
