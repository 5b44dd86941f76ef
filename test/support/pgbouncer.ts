// The tests' PgBouncer (scripts/local/pgbouncer.ts). Without the binary the tests that need it
// skip, except in CI (CI=true or REQUIRE_PGBOUNCER=1), where they fail.
import { PGBOUNCER } from "../../scripts/local/pgbouncer.ts";

export { PGBOUNCER, startPgBouncer, type PgBouncer } from "../../scripts/local/pgbouncer.ts";
export const REQUIRE_PGBOUNCER = process.env.REQUIRE_PGBOUNCER === "1" || process.env.CI === "true";

if (!PGBOUNCER && REQUIRE_PGBOUNCER) {
  throw new Error("pgbouncer is required here (CI or REQUIRE_PGBOUNCER=1) but was not found: apt-get install pgbouncer");
}
