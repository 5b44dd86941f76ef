import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import { createMiddleware } from "hono/factory";
import { csrf } from "hono/csrf";
import { HTTPException } from "hono/http-exception";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors/index.ts";
import { SESSION_COOKIE } from "./middleware.ts";

const FORM_TYPES = /^\s*(application\/x-www-form-urlencoded|multipart\/form-data)\b/i;

const originCheck = csrf();

/**
 * Hono's CSRF check (a form-like POST must come from this origin: Sec-Fetch-Site same-origin or a
 * matching Origin), answered in the app's error shape, for every request a browser could have been
 * made to send: one carrying the session cookie, or a form. A request with a bearer token (which a
 * browser never attaches by itself) or with no credential and no form is not checked. Forms also
 * carry a signed token (pages).
 */
export function csrfGuard() {
  return createMiddleware<AppEnv>(async function csrfMiddleware(c, next) {
    const ambient = getCookie(c, SESSION_COOKIE) !== undefined || FORM_TYPES.test(c.req.header("Content-Type") ?? "");
    if (c.req.header("Authorization") !== undefined || !ambient) return next();
    await requireSameOrigin(c);
    await next();
  });
}

/** Hono's Origin check, answered as 403 csrf_failed in the app's error shape. */
export async function requireSameOrigin(c: Context<AppEnv>): Promise<void> {
  try {
    await originCheck(c, async () => {});
  } catch (error) {
    if (error instanceof HTTPException && error.status === 403) {
      throw new AppError("csrf_failed", "This form was not sent from this site (cross-site request refused); reload the page and try again.");
    }
    throw error;
  }
}
