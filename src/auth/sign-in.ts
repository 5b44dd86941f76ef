// Sign-in, shared by the form (session cookie) and the API (bearer token): the per-tenant,
// per-client rate limit, then the password check against the stored hash.
import type { Context } from "hono";
import { deleteCookie, setCookie } from "hono/cookie";
import { eq } from "drizzle-orm";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors/index.ts";
import { burnPasswordCheck, hashPassword, verifyPassword } from "../security/password.ts";
import { SESSION_SECONDS, TOKEN_SECONDS, signCredential, type CredentialKind } from "./credentials.ts";
import { SESSION_COOKIE, sessionSecret, type AuthUser } from "./middleware.ts";
import { clientKey } from "../middleware/tenant.ts";

/** The sign-in limiter's period: a client over the limit is told to wait this long. */
export const SIGN_IN_RETRY_AFTER_SECONDS = 60;

/** Who is asking, as Cloudflare says (CF-Connecting-IP). */
/** One attempt more for this tenant and client; 429 with Retry-After when over the limit. */
async function countAttempt(c: Context<AppEnv>): Promise<void> {
  const limiter = c.env.SIGN_IN_LIMITER;
  let allowed = true;
  if (limiter) {
    try {
      allowed = (await limiter.limit({ key: `${c.var.tenant.id}:${clientKey(c.req.raw)}` })).success;
    } catch (error) {
      // The limiter guards passwords against guessing: when it fails, sign-in waits (fails closed).
      console.warn(JSON.stringify({ event: "sign_in_limiter_failed", requestId: c.get("requestId"), error: String(error) }));
      allowed = false;
    }
  }
  if (!allowed) {
    throw new AppError("rate_limited", `Too many sign-in attempts from your address; try again in ${SIGN_IN_RETRY_AFTER_SECONDS} seconds.`, {
      headers: { "Retry-After": String(SIGN_IN_RETRY_AFTER_SECONDS) },
    });
  }
}

/** The user whose email and password these are, in this tenant; 401 invalid_credentials otherwise. */
export async function signIn(c: Context<AppEnv>, email: string, password: string): Promise<AuthUser> {
  sessionSecret(c);
  await countAttempt(c);
  const { users } = c.var.tables;
  const [row] = await c.var.db.select().from(users).where(eq(users.email, email.trim().toLowerCase())).limit(1);
  const refused = new AppError("invalid_credentials", "Wrong email or password.");
  if (!row) {
    await burnPasswordCheck(password);
    throw refused;
  }
  const check = await verifyPassword(password, row.hashedPassword);
  if (!check.ok || !row.isActive) throw refused;
  if (check.outdated) {
    // Made with fewer PBKDF2 iterations than today's: store today's strength now that we know the password.
    await c.var.db.update(users).set({ hashedPassword: await hashPassword(password) }).where(eq(users.id, row.id));
  }
  return { id: row.id, email: row.email, fullName: row.fullName, role: row.role };
}

/** A signed credential for this tenant and user. */
export async function issueCredential(c: Context<AppEnv>, user: AuthUser, kind: CredentialKind): Promise<{ value: string; expiresAt: Date }> {
  const now = Math.floor(Date.now() / 1000);
  const exp = now + (kind === "session" ? SESSION_SECONDS : TOKEN_SECONDS);
  const { id, schema } = c.var.tenant;
  const value = await signCredential(sessionSecret(c), { k: kind, t: id, s: schema, u: user.id, iat: now, exp });
  return { value, expiresAt: new Date(exp * 1000) };
}

/** The session cookie: HttpOnly, Secure, SameSite=Lax, host-only (no Domain), the whole site. */
export async function startSession(c: Context<AppEnv>, user: AuthUser): Promise<void> {
  const { value } = await issueCredential(c, user, "session");
  setCookie(c, SESSION_COOKIE, value, { path: "/", httpOnly: true, secure: true, sameSite: "Lax", maxAge: SESSION_SECONDS });
}

export function endSession(c: Context<AppEnv>): void {
  deleteCookie(c, SESSION_COOKIE, { path: "/", httpOnly: true, secure: true, sameSite: "Lax" });
}
