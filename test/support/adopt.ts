// For the adopt tests: a snapshot of everything in a database that a refused adopt must leave as
// it was: every schema's catalog, the objects and owners and privileges of every relation, the
// default privileges, the rows of every table (count and checksum), every sequence's position, the
// catalog and ledger rows, and the app role.
import type pg from "pg";
import { DEFAULT_APP_ROLE } from "../../scripts/db/roles.ts";
import { databaseState, schemaCatalog, userSchemas } from "./catalog.ts";

export async function fullSnapshot(client: pg.Client) {
  const schemas = await userSchemas(client);
  const catalogs: Record<string, unknown> = {};
  for (const schema of schemas) catalogs[schema] = await schemaCatalog(client, schema);
  const q = async (sql: string, params: unknown[] = []) => (await client.query(sql, params)).rows;
  const relations = await q(
    `SELECT n.nspname || '.' || c.relname AS name, c.relkind::text AS kind, pg_get_userbyid(c.relowner) AS owner,
            coalesce(c.relacl::text, '') AS acl
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY($1::text[]) ORDER BY 1`,
    [schemas],
  );
  const data: Record<string, string> = {};
  const sequences: Record<string, string> = {};
  for (const r of relations as Array<{ name: string; kind: string }>) {
    const [schema, rel] = r.name.split(".") as [string, string];
    const qualified = `"${schema}"."${rel}"`;
    if (r.kind === "r") {
      const [row] = await q(`SELECT count(*)::text || ' ' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '-') AS v FROM ${qualified} t`);
      data[r.name] = row.v;
    }
    if (r.kind === "S") sequences[r.name] = (await q(`SELECT last_value::text || ' ' || is_called::text AS v FROM ${qualified}`))[0].v;
  }
  return {
    schemas: await q("SELECT nspname, pg_get_userbyid(nspowner) AS owner, coalesce(nspacl::text, '') AS acl FROM pg_namespace WHERE nspname = ANY($1::text[]) ORDER BY 1", [schemas]),
    catalogs,
    relations,
    data,
    sequences,
    functions: await q(
      `SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS f, md5(p.prosrc) AS body
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = ANY($1::text[]) ORDER BY 1`,
      [schemas],
    ),
    defaultAcls: await q("SELECT defaclnamespace::regnamespace::text AS ns, defaclobjtype::text AS t, defaclacl::text AS acl FROM pg_default_acl ORDER BY 1, 2"),
    eventTriggers: await q("SELECT evtname, evtenabled::text FROM pg_event_trigger ORDER BY 1"),
    appRole: await q("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = $1", [DEFAULT_APP_ROLE]),
    state: await databaseState(client),
  };
}
