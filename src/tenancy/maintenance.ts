// A tenant in maintenance (`npm run tenants -- maintenance <slug> on`): its hosts answer 503
// tenant_maintenance with the operator's message, except to requests carrying that window's bypass
// token. The catalog keeps only the token's SHA-256, so neither the catalog nor the caches (memory,
// KV) hold anything that opens the tenant. A token is valid at its own tenant only, and only until
// maintenance is switched off or on again (which makes a new one).
import type { Context } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors/index.ts";
import { constantTimeEqual } from "../security/password.ts";
import type { ResolvedTenant } from "./resolve.ts";

/** Scripts and tools send the token in this header. */
export const MAINTENANCE_BYPASS_HEADER = "X-Maintenance-Bypass";
/** A browser opens `/?maintenance_bypass=<token>` once; the Worker keeps the token in this cookie. */
export const MAINTENANCE_BYPASS_COOKIE = "maintenance_bypass";
export const MAINTENANCE_BYPASS_PARAM = "maintenance_bypass";
export const MAINTENANCE_RETRY_AFTER_SECONDS = 300;
const BYPASS_COOKIE_MAX_AGE_SECONDS = 12 * 3600;

/** SHA-256 of the token, hex: what the catalog stores (scripts/tenants/operations.ts makes the same). */
export async function bypassHash(token: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function opens(token: string | undefined, expectedHash: string): Promise<boolean> {
  if (!token || token.length > 200) return false;
  const encoder = new TextEncoder();
  return constantTimeEqual(encoder.encode(await bypassHash(token)), encoder.encode(expectedHash));
}

/**
 * Lets the request through when the tenant is not in maintenance or the request carries the
 * window's bypass token; otherwise throws 503 tenant_maintenance. A token given in the URL is moved
 * to a host-only cookie and the browser is redirected to the same URL without it: returns that
 * redirect, which the caller answers instead of running the handler.
 */
export async function checkMaintenance(c: Context<AppEnv>, tenant: ResolvedTenant): Promise<Response | undefined> {
  const maintenance = tenant.maintenance;
  if (!maintenance) return undefined;
  const fromUrl = c.req.query(MAINTENANCE_BYPASS_PARAM);
  if (fromUrl !== undefined && (await opens(fromUrl, maintenance.bypassHash))) {
    setCookie(c, MAINTENANCE_BYPASS_COOKIE, fromUrl, {
      httpOnly: true,
      secure: true,
      sameSite: "Lax",
      path: "/",
      maxAge: BYPASS_COOKIE_MAX_AGE_SECONDS,
    });
    // A browser's GET goes on to the same address without the token; any other method is served as
    // it is (a redirect would turn it into a GET and drop its body).
    if (c.req.method !== "GET" && c.req.method !== "HEAD") return undefined;
    const url = new URL(c.req.url);
    url.searchParams.delete(MAINTENANCE_BYPASS_PARAM);
    // Always a path on this host: "//evil.example/" (or "/\\evil.example/") as a Location would leave it.
    return c.redirect(`/${url.pathname.replace(/^[/\\]+/, "")}${url.search}`, 303);
  }
  // A stale or empty token in the URL does not hide a valid header or cookie.
  for (const token of [c.req.header(MAINTENANCE_BYPASS_HEADER), getCookie(c, MAINTENANCE_BYPASS_COOKIE)]) {
    if (await opens(token, maintenance.bypassHash)) return undefined;
  }
  throw new AppError("tenant_maintenance", maintenance.message, {
    headers: { "Retry-After": String(MAINTENANCE_RETRY_AFTER_SECONDS) },
  });
}
