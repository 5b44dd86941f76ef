import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { AppEnv } from "../env.ts";
import { chain, sqlState, type ErrorChain } from "./constraints.ts";

/** Every error a client can see has one of these machine-readable codes, and only this status. */
export const ERROR_STATUS = {
  invalid_host: 400,
  validation_error: 400,
  unauthenticated: 401,
  invalid_credentials: 401,
  sign_in_link_invalid: 401,
  forbidden: 403,
  csrf_failed: 403,
  tenant_not_found: 403,
  tenant_suspended: 403,
  not_found: 404,
  user_not_found: 404,
  item_not_found: 404,
  email_taken: 409,
  slug_taken: 409,
  host_taken: 409,
  rate_limited: 429,
  tenant_rate_limited: 429,
  misconfigured: 500,
  internal_error: 500,
  response_too_large: 500,
  database_unavailable: 503,
  tenant_schema_outdated: 503,
  tenant_maintenance: 503,
  statement_timeout: 503,
  signup_unavailable: 503,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly headers: Record<string, string>;
  /** Extra machine-readable facts, e.g. the fields at fault in a validation error. */
  readonly details?: unknown;
  constructor(code: ErrorCode, message: string, options: { headers?: Record<string, string>; details?: unknown } = {}) {
    super(message);
    this.code = code;
    this.headers = options.headers ?? {};
    this.details = options.details;
  }
}

export { baseConstraintName, isUniqueViolation, violatedConstraint } from "./constraints.ts";

export { sqlState };

/** The driver's own error (`NeonDbError`) in the chain, if any. */
function driverError(error: unknown): ErrorChain | undefined {
  return chain(error).find((e) => e.name === "NeonDbError");
}

/**
 * The HTTP status the SQL-over-HTTP endpoint answered, for a driver error that carries no SQLSTATE.
 * The driver reports it only in its fixed message format `Server error (HTTP status NNN): ...`.
 */
function endpointStatus(error: unknown): number | undefined {
  const e = driverError(error);
  if (!e || typeof e.message !== "string") return undefined;
  const match = /^Server error \(HTTP status (\d{3})\)/.exec(e.message);
  return match ? Number(match[1]) : undefined;
}

/** SQLSTATEs that mean "the database cannot serve us right now", not "this query is wrong". */
function isUnavailableState(state: string): boolean {
  return state.startsWith("08") || state === "57P01" || state === "57P02" || state === "57P03" || state === "53300";
}

/**
 * SQLSTATEs of a statement naming something that does not exist: the tenant's schema (3F000, or
 * 42P01 for a table in a dropped schema), or a table, column, type or function a migration adds.
 */
const UNDEFINED_OBJECT_STATES = new Set(["3F000", "42P01", "42703", "42704", "42883"]);

export type DatabaseErrorKind = "unavailable" | "response_too_large" | "undefined_object" | "statement_timeout" | "query";

/**
 * What a database error means for the client, from its SQLSTATE and the driver's structure (never
 * from message text): undefined when the error did not come from the database at all.
 */
export function classifyDatabaseError(error: unknown): DatabaseErrorKind | undefined {
  // The Hyperdrive client could not connect, or lost its connection (src/db/client.ts), whatever
  // SQLSTATE the server gave when refusing it.
  if (chain(error).some((e) => e.name === "DatabaseConnectionError")) return "unavailable";
  const state = sqlState(error);
  if (state) {
    if (isUnavailableState(state)) return "unavailable";
    if (UNDEFINED_OBJECT_STATES.has(state)) return "undefined_object";
    // query_canceled: the app role's statement_timeout (set by init) stopped a slow statement.
    if (state === "57014") return "statement_timeout";
    return "query";
  }
  const driver = driverError(error);
  if (!driver) return undefined;
  // fetch itself failed: the driver keeps the network error as `sourceError`.
  if (driver.sourceError !== undefined) return "unavailable";
  const status = endpointStatus(error);
  if (status === 507) return "response_too_large";
  if (status !== undefined && status >= 500) return "unavailable";
  return "query";
}

/** Whether an error from the driver means the database could not be reached at all. */
export function isDatabaseUnreachable(error: unknown): boolean {
  return classifyDatabaseError(error) === "unavailable";
}

/** The first words of the statement that failed (drizzle's error carries it), never its parameters. */
export function statementWords(error: unknown, words = 4): string | undefined {
  const query = chain(error).find((e) => typeof e.query === "string")?.query as string | undefined;
  if (!query) return undefined;
  return query.trim().split(/\s+/).slice(0, words).join(" ").slice(0, 80);
}

/**
 * One log line for a failure, as JSON: what happened, the request id and, for a database error, its
 * SQLSTATE and the statement's first words. Never the parameters, the driver's message (PostgreSQL
 * quotes values in it: "Failing row contains (...)") or the error's detail.
 */
export function logFailure(c: Context<AppEnv>, event: string, error: unknown, extra: Record<string, unknown> = {}): void {
  const line: Record<string, unknown> = { event, requestId: c.get("requestId") ?? "", ...extra };
  const tenant = c.get("tenant");
  if (tenant && line.tenant === undefined) line.tenant = tenant.slug;
  const kind = classifyDatabaseError(error);
  const fromQuery = chain(error).some((e) => typeof e.query === "string");
  if (kind || fromQuery) {
    line.sqlstate = sqlState(error) ?? null;
    const status = endpointStatus(error);
    if (status !== undefined) line.httpStatus = status;
    line.statement = statementWords(error) ?? null;
  } else if (error instanceof Error) {
    line.error = error.name;
    line.message = error.message;
    line.stack = error.stack;
  } else if (error !== undefined) {
    line.error = typeof error;
  }
  console.error(JSON.stringify(line));
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** One error shape: JSON `{ error: { code, message, requestId } }`, or a small page for browsers. */
export function errorResponse(c: Context<AppEnv>, error: AppError): Response {
  const status = ERROR_STATUS[error.code];
  const requestId = c.get("requestId") ?? "";
  const telemetry = c.get("telemetry");
  if (telemetry) telemetry.errorCode = error.code;
  for (const [name, value] of Object.entries(error.headers)) c.header(name, value);
  if (c.req.header("Accept")?.includes("text/html")) {
    return c.html(
      `<!doctype html><html lang="en"><head><meta charset="utf-8">` +
        `<meta name="viewport" content="width=device-width, initial-scale=1"><title>${status} ${error.code}</title>` +
        `<link rel="stylesheet" href="/styles.css"></head>` +
        `<body><main><h1>${escapeHtml(error.message)}</h1><p>Code: <code>${error.code}</code>` +
        ` &middot; Request: <code>${escapeHtml(requestId)}</code></p><p><a href="/">Home</a></p></main></body></html>`,
      status,
    );
  }
  const body: Record<string, unknown> = { code: error.code, message: error.message, requestId };
  if (error.details !== undefined) body.details = error.details;
  return c.json({ error: body }, status);
}

export function databaseUnavailable(): AppError {
  return new AppError("database_unavailable", "The database cannot be reached right now; try again shortly.", {
    headers: { "Retry-After": "5" },
  });
}

export function onError(error: Error, c: Context<AppEnv>): Response {
  if (error instanceof AppError) return errorResponse(c, error);
  // Hono's validator throws a 400 HTTPException for a body that is not JSON, before any zod hook runs.
  if (error instanceof HTTPException && error.status === 400) {
    return errorResponse(
      c,
      new AppError("validation_error", `Invalid input: ${error.message}`, {
        details: [{ field: "(body)", message: error.message }],
      }),
    );
  }
  const kind = classifyDatabaseError(error);
  if (kind === "unavailable") {
    logFailure(c, "database_unavailable", error);
    return errorResponse(c, databaseUnavailable());
  }
  if (kind === "response_too_large") {
    logFailure(c, "response_too_large", error);
    return errorResponse(
      c,
      new AppError("response_too_large", "The answer is larger than the database may send in one response; ask for less (e.g. a smaller limit)."),
    );
  }
  if (kind === "statement_timeout") {
    logFailure(c, "statement_timeout", error);
    return errorResponse(
      c,
      new AppError("statement_timeout", "The database stopped this request's query: it ran longer than the service allows. Try again, or ask for less."),
    );
  }
  logFailure(c, "internal_error", error);
  return errorResponse(c, new AppError("internal_error", "Something went wrong on our side."));
}

/**
 * The outermost guard: anything that escapes Hono (or happens before it) still gets the one JSON
 * shape, never the runtime's bare 500.
 */
export function lastResortResponse(error: unknown, request: Request): Response {
  const requestId = crypto.randomUUID();
  try {
    console.error(JSON.stringify({ event: "unhandled_error", requestId, error: error instanceof Error ? error.name : typeof error }));
  } catch {
    // Logging failed too: the answer below still goes out.
  }
  return new Response(
    JSON.stringify({ error: { code: "internal_error", message: "Something went wrong on our side.", requestId } }),
    { status: 500, headers: { "Content-Type": "application/json", "X-Request-Id": requestId } },
  );
}
