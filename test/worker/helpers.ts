// Calls the Worker's fetch handler inside workerd, with the test bindings (or overrides).
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import app from "../../src/index.ts";

export interface Call {
  path?: string;
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  bindings?: object;
}

/** A request to `http://<host><path>`: the URL carries the host, as in workerd. */
export async function request(host: string, options: Call = {}): Promise<Response> {
  const ctx = createExecutionContext();
  const init: RequestInit = { method: options.method ?? "GET", headers: { ...options.headers } };
  if (options.body !== undefined) {
    init.body = JSON.stringify(options.body);
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
  }
  const res = await app.fetch(new Request(`http://${host}${options.path ?? "/tenant"}`, init), options.bindings ?? env, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

export async function errorCode(res: Response): Promise<string> {
  return ((await res.json()) as { error: { code: string } }).error.code;
}
