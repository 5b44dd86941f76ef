import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { AppEnv } from "../env.ts";

/** Every error a client can see has one of these machine-readable codes, and only this status. */
export const ERROR_STATUS = {
  invalid_host: 400,
  validation_error: 400,
  tenant_not_found: 403,
  tenant_suspended: 403,
  not_found: 404,
  user_not_found: 404,
  email_taken: 409,
  misconfigured: 500,
  internal_error: 500,
  database_unavailable: 503,
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

/** PostgreSQL's SQLSTATE of a driver error, looking through drizzle's wrapper. */
export function sqlState(error: unknown): string | undefined {
  for (let e = error as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; depth++) {
    if (typeof e.code === "string" && /^[0-9A-Z]{5}$/.test(e.code)) return e.code;
    e = e.cause as typeof e;
  }
  return undefined;
}

function messages(error: unknown): string {
  const parts: string[] = [];
  for (let e = error as { message?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; depth++) {
    parts.push(String(e.message ?? e));
    e = e.cause as typeof e;
  }
  return parts.join(" | ");
}

/** Whether an error from the driver means the database could not be reached at all. */
export function isDatabaseUnreachable(error: unknown): boolean {
  return /Error connecting to database|Server error \(HTTP status 5\d\d\)|fetch failed|ECONNREFUSED|Network connection lost/i.test(
    messages(error),
  );
}

/** Whether a query failed because a tenant's schema (or its tables) no longer exists. */
export function isMissingSchema(error: unknown, schemaName: string): boolean {
  const state = sqlState(error);
  return (state === "3F000" || state === "42P01" || state === "42704") && messages(error).includes(schemaName);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** One error shape: JSON `{ error: { code, message, requestId } }`, or a small page for browsers. */
export function errorResponse(c: Context<AppEnv>, error: AppError): Response {
  const status = ERROR_STATUS[error.code];
  const requestId = c.get("requestId") ?? "";
  for (const [name, value] of Object.entries(error.headers)) c.header(name, value);
  if (c.req.header("Accept")?.includes("text/html")) {
    return c.html(
      `<!doctype html><html><head><meta charset="utf-8"><title>${status} ${error.code}</title></head>` +
        `<body><h1>${escapeHtml(error.message)}</h1><p>Code: <code>${error.code}</code>` +
        ` &middot; Request: <code>${escapeHtml(requestId)}</code></p></body></html>`,
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
  // The tenant was removed while caches still held it (the middleware evicts it): as if unknown.
  const tenant = c.get("tenant");
  if (tenant && isMissingSchema(error, tenant.schema)) {
    return errorResponse(c, new AppError("tenant_not_found", "No tenant answers at this host."));
  }
  if (isDatabaseUnreachable(error)) return errorResponse(c, databaseUnavailable());
  console.error(`[${c.get("requestId")}]`, error);
  return errorResponse(c, new AppError("internal_error", "Something went wrong on our side."));
}
