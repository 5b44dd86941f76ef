// Who is asking, per tenant. A credential (session cookie or bearer token) is accepted only when its
// signature is ours, it has not expired, it names THIS tenant's identity (catalog id and schema, as
// the tenancy middleware resolved them from the host), and its user still exists and is active here.
import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import { createMiddleware } from "hono/factory";
import { eq } from "drizzle-orm";
import type { AppEnv } from "../env.ts";
import { AppError } from "../errors/index.ts";
import { readCredential, type CredentialKind } from "./credentials.ts";

export const SESSION_COOKIE = "session";

export interface AuthUser {
  id: number;
  email: string;
  fullName: string | null;
  role: "member" | "admin";
}

export type Authentication =
  | { kind: "anonymous" }
  /** Something was presented and refused: bad signature, expired, another tenant's, or no such user. */
  | { kind: "refused"; via: CredentialKind }
  | { kind: "user"; via: CredentialKind; user: AuthUser };

/** The signing key, or a clear 500 when the deployment has none. */
export function sessionSecret(c: Context<AppEnv>): string {
  const secret = c.var.config.SESSION_SECRET;
  if (!secret) {
    throw new AppError(
      "misconfigured",
      "SESSION_SECRET is not set: run `wrangler secret put SESSION_SECRET` (production) or `npm run dev` (local), with at least 32 random characters.",
    );
  }
  return secret;
}

function presented(c: Context<AppEnv>): { via: CredentialKind; value: string } | undefined {
  const header = c.req.header("Authorization");
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return { via: "token", value: match?.[1] ?? "" };
  }
  const cookie = getCookie(c, SESSION_COOKIE);
  if (cookie !== undefined) return { via: "session", value: cookie };
  return undefined;
}

async function authenticateRequest(c: Context<AppEnv>): Promise<Authentication> {
  const given = presented(c);
  if (!given) return { kind: "anonymous" };
  const refused = { kind: "refused", via: given.via } as const;
  const credential = await readCredential(sessionSecret(c), given.value);
  const tenant = c.var.tenant;
  // A cookie must be a session and a bearer token a token; and both belong to one tenant only.
  if (!credential || credential.k !== given.via || credential.t !== tenant.id || credential.s !== tenant.schema) return refused;
  const { users } = c.var.tables;
  const [user] = await c.var.db
    .select({ id: users.id, email: users.email, fullName: users.fullName, role: users.role, isActive: users.isActive })
    .from(users)
    .where(eq(users.id, credential.u))
    .limit(1);
  if (!user || !user.isActive) return refused;
  return { kind: "user", via: given.via, user: { id: user.id, email: user.email, fullName: user.fullName, role: user.role } };
}

/** Sets `c.var.auth`; runs after the tenancy middleware. Refuses nothing by itself. */
export function authenticate() {
  return createMiddleware<AppEnv>(async function authMiddleware(c, next) {
    c.set("auth", await authenticateRequest(c));
    await next();
  });
}

/** The signed-in user, or 401 (with why, for a credential that was refused). */
export function requireUser(c: Context<AppEnv>): AuthUser {
  const auth = c.var.auth;
  if (auth.kind === "user") return auth.user;
  const message =
    auth.kind === "refused"
      ? `The ${auth.via === "token" ? "bearer token" : "session cookie"} is not valid at this tenant (expired, tampered with, or issued by another tenant): sign in here again.`
      : "Sign in first: send a session cookie or `Authorization: Bearer <token>` from POST /auth/token.";
  throw new AppError("unauthenticated", message, { headers: { "WWW-Authenticate": 'Bearer realm="tenant"' } });
}

export function requireAdmin(c: Context<AppEnv>): AuthUser {
  const user = requireUser(c);
  if (user.role !== "admin") throw new AppError("forbidden", "Only an admin of this tenant may do this.");
  return user;
}

/** The signed-in user may act on `userId`: it is themselves, or they are an admin. */
export function requireSelfOrAdmin(c: Context<AppEnv>, userId: number): AuthUser {
  const user = requireUser(c);
  if (user.id !== userId && user.role !== "admin") throw new AppError("forbidden", "You may only act on your own user.");
  return user;
}
