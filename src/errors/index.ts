import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { AppEnv } from "../env.ts";

/** Every error a client can see has one of these machine-readable codes. */
export const ERROR_STATUS = {
  bad_request: 400,
  not_found: 404,
  misconfigured: 500,
  internal_error: 500,
  database_unavailable: 503,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Whether an error from the driver means the database could not be reached at all. */
export function isDatabaseUnreachable(error: unknown): boolean {
  const message = error instanceof Error ? `${error.message} ${String(error.cause ?? "")}` : "";
  return /Error connecting to database|Server error \(HTTP status 5\d\d\)|fetch failed|ECONNREFUSED/i.test(message);
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
  return c.json({ error: { code: error.code, message: error.message, requestId } }, status);
}

export function onError(error: Error, c: Context<AppEnv>): Response {
  if (error instanceof AppError) return errorResponse(c, error);
  if (isDatabaseUnreachable(error)) {
    return errorResponse(
      c,
      new AppError("database_unavailable", "The database cannot be reached right now; try again shortly.", {
        "Retry-After": "5",
      }),
    );
  }
  console.error(`[${c.get("requestId")}]`, error);
  return errorResponse(c, new AppError("internal_error", "Something went wrong on our side."));
}
