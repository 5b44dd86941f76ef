import { OpenAPIHono, type Hook } from "@hono/zod-openapi";
import type { AppEnv } from "../env.ts";
import { AppError, errorResponse } from "../errors/index.ts";

/** Zod failures at any route become one 400 `validation_error` naming the fields at fault. */
const validationHook: Hook<unknown, AppEnv, string, unknown> = (result, c) => {
  if (result.success) return;
  const fields = result.error.issues.map((issue) => ({ field: issue.path.join(".") || "(body)", message: issue.message }));
  return errorResponse(
    c,
    new AppError("validation_error", `Invalid input: ${fields.map((f) => `${f.field}: ${f.message}`).join("; ")}`, {
      details: fields,
    }),
  );
};

/** A sub-app whose routes are validated with zod and described in the OpenAPI document. */
export function apiRouter() {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
}
