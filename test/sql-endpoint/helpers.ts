// Shared by the SQL endpoint tests: the real driver pointed at the local endpoint, a direct `pg`
// client with the endpoint's session settings, and plain-fetch access to the raw protocol.
import { neon, neonConfig } from "@neondatabase/serverless";
import pg from "pg";
import { afterAll, beforeAll, inject } from "vitest";

/** Every value as PostgreSQL's text output, unparsed (for pg and for the driver's `types`). */
export const RAW_TYPES = { getTypeParser: () => (value: string) => value };

/** The settings the endpoint's upstream sessions use, so text output compares equal. */
const SESSION_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO,MDY -c IntervalStyle=postgres";

export function databaseUrl(): string {
  return inject("databaseUrl");
}

export function endpointUrl(): string {
  return inject("sqlEndpointUrl");
}

/** `neon()` against the local endpoint (fetchEndpoint is global, so every call sets it). */
export function driver() {
  neonConfig.fetchEndpoint = () => endpointUrl();
  return neon(databaseUrl());
}

export async function directClient(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: databaseUrl(), options: SESSION_OPTIONS });
  await client.connect();
  return client;
}

/** A query straight to PostgreSQL, rows as arrays of raw text. */
export async function rawDirect(client: pg.Client, text: string, values: unknown[] = []) {
  return client.query({ text, values, rowMode: "array", types: RAW_TYPES });
}

/** A fresh, empty schema owned by one test file. */
export async function freshSchema(client: pg.Client, schema: string): Promise<void> {
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.query(`CREATE SCHEMA ${schema}`);
}

/** The headers the driver sends, for requests made with plain fetch. */
export function protocolHeaders(extra: Record<string, string> = {}): Record<string, string> {
  return {
    "Neon-Connection-String": databaseUrl(),
    "Neon-Raw-Text-Output": "true",
    "Neon-Array-Mode": "true",
    ...extra,
  };
}

/** POST a JSON body to the endpoint with plain fetch; returns the status, headers and parsed body. */
export async function post(body: unknown, extraHeaders: Record<string, string> = {}) {
  const res = await fetch(endpointUrl(), {
    method: "POST",
    headers: protocolHeaders(extraHeaders),
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** A connection string like the real one with its user, password or database replaced. */
export function connectionStringWith(change: { user?: string; password?: string; database?: string }): string {
  const url = new URL(databaseUrl());
  if (change.user !== undefined) url.username = change.user;
  if (change.password !== undefined) url.password = change.password;
  if (change.database !== undefined) url.pathname = `/${change.database}`;
  return url.toString();
}

/**
 * Gives the test file a schema of its own: made fresh before its tests (then `setup` runs on the
 * direct client), dropped after them. `onClient` receives that direct `pg` client.
 */
export function useScratchSchema(
  schema: string,
  onClient: (client: pg.Client) => void,
  setup: (client: pg.Client) => Promise<void> = async () => {},
): void {
  let client: pg.Client;
  beforeAll(async () => {
    client = await directClient();
    onClient(client);
    await freshSchema(client, schema);
    await setup(client);
  });
  afterAll(async () => {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  });
}
