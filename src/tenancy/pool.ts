// Claiming a slot of the warm pool (shared.tenant_pool, filled by `npm run tenants -- pool fill`):
// DML only, one short transaction. The same SQL serves the CLI (`tenants create`, through `pg`) and
// the Worker (`POST /signup`, through the HTTP driver's `sql.transaction([...])`), so "claimed"
// means the same thing in both.

/**
 * A free slot to try: one at random among the unclaimed, so that concurrent sign-ups rarely pick the
 * same one (when they do, one claim wins and the other tries again).
 */
export const PICK_SLOT_SQL = `SELECT schema_name AS schema FROM shared.tenant_pool WHERE claimed_at IS NULL ORDER BY random() LIMIT 1`;

/**
 * Claims slot $1 with token $2 for a new tenant (slug $3, display name $4, hosts $5, the first
 * primary), in one statement: mark the slot claimed, insert the tenant, give the slot's registry row
 * its tenant (a trigger allows that only for a row that has none), insert the hosts. When the slot
 * was claimed meanwhile, or one of the hosts was released from another tenant less than $6 seconds
 * ago (the staleness bound; 0 when the caller checked the quarantine itself), nothing is written
 * and no row is returned. A slug or host taken meanwhile fails with a unique violation (23505).
 */
export const CLAIM_SLOT_SQL = `
WITH slot AS (
  UPDATE shared.tenant_pool SET claimed_at = now(), claim_token = $2
  WHERE schema_name = $1 AND claimed_at IS NULL
    AND NOT EXISTS (SELECT 1 FROM shared.released_hosts r
                    WHERE r.host = ANY($5::text[]) AND r.released_at + make_interval(secs => $6::int) > now())
  RETURNING schema_name
), t AS (
  INSERT INTO shared.tenants (slug, name, schema_name) SELECT $3, $4, schema_name FROM slot
  RETURNING id, schema_name
), registry AS (
  UPDATE shared.tenant_schemas s SET tenant_id = t.id FROM t
  WHERE s.schema_name = t.schema_name AND s.tenant_id IS NULL
  RETURNING s.schema_name
), hosts AS (
  INSERT INTO shared.tenant_hosts (host, tenant_id, is_primary)
  SELECT h.host, t.id, h.n = 1 FROM t, unnest($5::text[]) WITH ORDINALITY AS h(host, n)
  RETURNING host
)
SELECT t.id::int AS id, t.schema_name AS schema, (SELECT count(*)::int FROM registry) AS registered
FROM t`;

/** A claim token: which transaction claimed a slot (its later statements check it). */
export function newClaimToken(): string {
  return crypto.randomUUID();
}

/** Whether the slot `schema` was claimed with `token`: the guard of a claiming transaction's later statements. */
export const CLAIMED_BY_SQL = `EXISTS (SELECT 1 FROM shared.tenant_pool p WHERE p.schema_name = $1 AND p.claim_token = $2)`;
