// How long a host's old answer may still be served after the catalog changed, with the Worker's
// default cache lifetimes (src/env.ts) and no purge of Workers KV:
//   KV entry (TENANT_KV_TTL_SECONDS, default 300 s)
// + isolate memory (TENANT_MEMORY_TTL_SECONDS, default 30 s; memory is never purged)
// + KV's eventual consistency across locations (writes and deletes reach other locations in up to
//   about 60 s, per Cloudflare's documentation).
// A deployment that raises those TTLs must raise this bound with them.

import { DEFAULT_TTL_SECONDS } from "../../src/tenancy/ttl.ts";

export const DEFAULT_KV_TTL_SECONDS = DEFAULT_TTL_SECONDS.kv;
export const DEFAULT_MEMORY_TTL_SECONDS = DEFAULT_TTL_SECONDS.memory;
export const KV_PROPAGATION_SECONDS = 60;

/** The staleness bound: 390 s (6.5 minutes) with the default TTLs. */
export const STALENESS_BOUND_SECONDS = DEFAULT_KV_TTL_SECONDS + DEFAULT_MEMORY_TTL_SECONDS + KV_PROPAGATION_SECONDS;

/** "6.5 minutes (390 s)" */
export function describeStalenessBound(): string {
  return `${STALENESS_BOUND_SECONDS / 60} minutes (${STALENESS_BOUND_SECONDS} s)`;
}
