// Pure pieces of Neon's SQL-over-HTTP protocol: request parsing, parameter encoding, result and
// error shapes. See docs/sql-over-http.md; nothing here touches a socket.
import type { DatabaseError, FieldDef } from "pg";

export const MAX_REQUEST_BYTES = 10 * 1024 * 1024;
export const MAX_RESPONSE_BYTES = 10 * 1024 * 1024;

const ISOLATION_LEVELS: Record<string, string> = {
  ReadUncommitted: "READ UNCOMMITTED",
  ReadCommitted: "READ COMMITTED",
  RepeatableRead: "REPEATABLE READ",
  Serializable: "SERIALIZABLE",
};

/** An error the endpoint answers itself (not PostgreSQL's): the status and Neon's message. */
export class EndpointError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface Credentials {
  user: string;
  password: string;
  database: string;
}

export interface QueryItem {
  query: string;
  params: unknown[];
  arrayMode?: boolean;
}

export interface ParsedRequest {
  queries: QueryItem[];
  batch: boolean;
}

export interface BatchOptions {
  isolationLevel?: string;
  readOnly: boolean;
  deferrable: boolean;
  /** Headers echoed back on a batch response. */
  echo: Record<string, string>;
}

/** Neon reads only user, password and database name; host, port and query options are ignored. */
export function parseConnectionString(value: string | undefined): Credentials {
  if (!value) throw new EndpointError(400, "missing connection string (Neon-Connection-String header)");
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new EndpointError(400, "invalid connection string");
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new EndpointError(400, "invalid connection string: the scheme must be postgres:// or postgresql://");
  }
  const user = decodeURIComponent(url.username);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (!database) throw new EndpointError(400, "missing database name");
  if (!user) throw new EndpointError(400, "missing username");
  return { user, password: decodeURIComponent(url.password), database };
}

/** A boolean header is true only when its value is exactly `true`. */
export function headerFlag(value: string | string[] | undefined): boolean {
  return value === "true";
}

export function parseBatchOptions(headers: Record<string, string | string[] | undefined>): BatchOptions {
  const echo: Record<string, string> = {};
  const level = headers["neon-batch-isolation-level"];
  let isolationLevel: string | undefined;
  if (typeof level === "string") {
    isolationLevel = ISOLATION_LEVELS[level];
    if (!isolationLevel) throw new EndpointError(400, "invalid isolation level");
    echo["Neon-Batch-Isolation-Level"] = level;
  }
  for (const [name, header] of [
    ["Neon-Batch-Read-Only", "neon-batch-read-only"],
    ["Neon-Batch-Deferrable", "neon-batch-deferrable"],
  ] as const) {
    const value = headers[header];
    if (typeof value === "string") echo[name] = value;
  }
  return {
    isolationLevel,
    readOnly: headerFlag(headers["neon-batch-read-only"]),
    deferrable: headerFlag(headers["neon-batch-deferrable"]),
    echo,
  };
}

export function startTransactionSql(options: BatchOptions): string {
  // Commas go between modes only: `START TRANSACTION, READ ONLY` is a syntax error.
  const modes: string[] = [];
  if (options.isolationLevel) modes.push(`ISOLATION LEVEL ${options.isolationLevel}`);
  if (options.readOnly) modes.push("READ ONLY");
  if (options.deferrable) modes.push("DEFERRABLE");
  return modes.length > 0 ? `START TRANSACTION ${modes.join(", ")}` : "START TRANSACTION";
}

function parseQueryItem(value: unknown): QueryItem {
  if (typeof value !== "object" || value === null || typeof (value as QueryItem).query !== "string") {
    throw new EndpointError(400, "could not parse the HTTP request body: each query needs a \"query\" string");
  }
  const item = value as { query: string; params?: unknown; arrayMode?: unknown };
  if (item.params !== undefined && item.params !== null && !Array.isArray(item.params)) {
    throw new EndpointError(400, "could not parse the HTTP request body: \"params\" must be an array");
  }
  return {
    query: item.query,
    params: (item.params as unknown[] | undefined) ?? [],
    arrayMode: typeof item.arrayMode === "boolean" ? item.arrayMode : undefined,
  };
}

/** The body is JSON whatever the Content-Type: one query, or `{ queries: [...] }`. */
export function parseBody(body: string): ParsedRequest {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (error) {
    throw new EndpointError(400, `could not parse the HTTP request body: ${(error as Error).message}`);
  }
  if (typeof json === "object" && json !== null && Array.isArray((json as { queries?: unknown }).queries)) {
    return { queries: (json as { queries: unknown[] }).queries.map(parseQueryItem), batch: true };
  }
  return { queries: [parseQueryItem(json)], batch: false };
}

function arrayElement(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  if (Array.isArray(value)) return arrayLiteral(value);
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

function arrayLiteral(values: unknown[]): string {
  return `{${values.map(arrayElement).join(",")}}`;
}

/** Every parameter is bound as text with unspecified type, as Neon's proxy does. */
export function encodeParam(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return arrayLiteral(value);
  return JSON.stringify(value);
}

export interface QueryOutcome {
  fields: FieldDef[];
  rows: unknown[][];
  command: string;
  rowCount: number | null;
}

const NUMBER_TYPES = new Set([20, 21, 23, 26, 700, 701]);
const JSON_TYPES = new Set([114, 3802]);

/** Without raw text output Neon turns a few scalar types into JSON values; the driver never asks. */
function typedValue(value: unknown, typeId: number): unknown {
  if (value === null || typeof value !== "string") return value;
  if (typeId === 16) return value === "t";
  if (NUMBER_TYPES.has(typeId)) return Number(value);
  if (JSON_TYPES.has(typeId)) return JSON.parse(value);
  return value;
}

export function resultBody(outcome: QueryOutcome, arrayMode: boolean, rawText: boolean) {
  const fields = outcome.fields.map((f) => ({
    name: f.name,
    dataTypeID: f.dataTypeID,
    tableID: f.tableID,
    columnID: f.columnID,
    dataTypeSize: f.dataTypeSize,
    dataTypeModifier: f.dataTypeModifier,
    format: "text",
  }));
  const rows = outcome.rows.map((row) => {
    const values = rawText ? row : row.map((v, i) => typedValue(v, fields[i]!.dataTypeID));
    if (arrayMode) return values;
    return Object.fromEntries(fields.map((f, i) => [f.name, values[i]]));
  });
  return { fields, command: outcome.command, rowCount: outcome.rowCount, rows, rowAsArray: arrayMode };
}

const PG_ERROR_FIELDS = [
  "code",
  "detail",
  "hint",
  "position",
  "internalPosition",
  "internalQuery",
  "severity",
  "where",
  "table",
  "column",
  "schema",
  "dataType",
  "constraint",
  "file",
  "line",
  "routine",
] as const;

export function isPostgresError(error: unknown): error is DatabaseError {
  return error instanceof Error && typeof (error as DatabaseError).code === "string" && "severity" in error;
}

/** Neon's error body: PostgreSQL's fields (absent ones null), or empty code/severity for others. */
export function errorBody(error: unknown): Record<string, string | null> {
  const body: Record<string, string | null> = { message: error instanceof Error ? error.message : String(error) };
  const pgError = isPostgresError(error) ? (error as unknown as Record<string, unknown>) : undefined;
  for (const field of PG_ERROR_FIELDS) {
    const value = pgError?.[field];
    body[field] = value === undefined || value === null ? null : String(value);
  }
  if (!pgError) {
    body.code = "";
    body.severity = "";
  }
  return body;
}
