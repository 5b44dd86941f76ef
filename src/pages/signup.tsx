/** @jsxImportSource hono/jsx */
// Self-service sign-up on the apex (the public site): a form (no JavaScript, CSRF token) that posts
// to POST /signup, which claims a warm-pool slot (src/tenancy/pool.ts) and creates the first admin
// in one transaction (`sql.transaction([...])` over the HTTP driver, BEGIN ... COMMIT through
// Hyperdrive: src/db/client.ts's transactionRows), as the Worker's app role (DML only), then
// sends the browser to the new tenant's host with a one-time sign-in link. The tenant host
// exchanges it (GET /welcome) for its own host-only session cookie.
import type { Context } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import { and, eq } from "drizzle-orm";
import type { AppEnv } from "../env.ts";
import { AppError, ERROR_STATUS, sqlState } from "../errors/index.ts";
import { mac, randomHex } from "../auth/credentials.ts";
import { sessionSecret } from "../auth/middleware.ts";
import { requireSameOrigin } from "../auth/csrf.ts";
import { startSession } from "../auth/sign-in.ts";
import { catalogDatabase, queryRows, transactionRows } from "../db/client.ts";
import { tenantPool } from "../db/schema/shared.ts";
import { clientKey } from "../middleware/tenant.ts";
import { hashPassword, constantTimeEqual } from "../security/password.ts";
import { UserCreateSchema } from "../routes/schemas.ts";
import { evictHost } from "../tenancy/resolve.ts";
import { hostError, isValidSchemaName, normalizeHost, quoteIdent, slugError } from "../tenancy/naming.ts";
import { CLAIMED_BY_SQL, CLAIM_SLOT_SQL, PICK_SLOT_SQL, newClaimToken } from "../tenancy/pool.ts";
import { DEFAULT_TTL_SECONDS } from "../tenancy/ttl.ts";
import { Layout } from "./layout.tsx";

const CSRF_COOKIE = "csrf";
/** How long a sign-in link from sign-up stays valid (it is also good for one use only). */
export const HANDOFF_SECONDS = 120;
/** Sign-ups per client address and minute (SIGNUP_LIMITER in wrangler.toml); over it, 429. */
export const SIGNUP_RETRY_AFTER_SECONDS = 60;
/** A racing sign-up took the slot we picked: pick again this many times, then 503. */
const CLAIM_ATTEMPTS = 3;
/**
 * A host removed from a tenant less than this long ago is not given to a new one (cached answers may
 * still send its visitors to the old tenant): the CLI's staleness bound with the default TTLs
 * (scripts/tenants/staleness.ts).
 */
const QUARANTINE_SECONDS = DEFAULT_TTL_SECONDS.kv + DEFAULT_TTL_SECONDS.memory + 60;

const b64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

/** The apex form's CSRF token, bound to this browser's random `csrf` cookie. */
async function signupCsrfToken(secret: string, nonce: string): Promise<string> {
  return b64(await mac(secret, "signup-csrf", nonce));
}

async function formToken(c: Context<AppEnv>): Promise<string> {
  let nonce = getCookie(c, CSRF_COOKIE);
  if (!nonce || !/^[0-9a-f]{32}$/.test(nonce)) {
    nonce = randomHex(16);
    setCookie(c, CSRF_COOKIE, nonce, { path: "/", httpOnly: true, secure: true, sameSite: "Lax" });
  }
  return signupCsrfToken(sessionSecret(c), nonce);
}

interface FormValues {
  slug?: string;
  name?: string;
  email?: string;
  fullName?: string;
}

function SignUpPage(props: { apex: string; token: string; message?: string; values?: FormValues }) {
  const v = props.values ?? {};
  return (
    <Layout title="Sign up · edge-tenants">
      <h1>Sign up a new organisation</h1>
      {props.message ? (
        <p class="notice" role="alert">
          {props.message}
        </p>
      ) : null}
      <form method="post" action="/signup">
        <input type="hidden" name="csrf" value={props.token} />
        <label for="su-slug">Short name, for your address &lt;name&gt;.{props.apex} (lowercase letters, digits, underscores; an underscore becomes a hyphen in the address)</label>
        <input id="su-slug" name="slug" type="text" required pattern="[a-z][a-z0-9_]{0,55}" maxlength={56} value={v.slug ?? ""} />
        <label for="su-name">Organisation name</label>
        <input id="su-name" name="name" type="text" required maxlength={200} value={v.name ?? ""} />
        <label for="su-full-name">Your name (optional)</label>
        <input id="su-full-name" name="fullName" type="text" autocomplete="name" value={v.fullName ?? ""} />
        <label for="su-email">Your email (you become its first admin)</label>
        <input id="su-email" name="email" type="email" autocomplete="email" required value={v.email ?? ""} />
        <label for="su-password">Password (at least 8 characters)</label>
        <input id="su-password" name="password" type="password" autocomplete="new-password" minlength={8} required />
        <button type="submit">Create my organisation</button>
      </form>
      <p>
        <a href="/">Back</a>
      </p>
    </Layout>
  );
}

export async function signUpPage(c: Context<AppEnv>, apex: string): Promise<Response> {
  return c.html(<SignUpPage apex={apex} token={await formToken(c)} />);
}

/** A refusal: the form again with the message for browsers, the app's JSON error otherwise. */
async function refuse(c: Context<AppEnv>, apex: string, error: AppError, values: FormValues): Promise<Response> {
  if (!c.req.header("Accept")?.includes("text/html") || error.code === "csrf_failed") throw error;
  for (const [name, value] of Object.entries(error.headers)) c.header(name, value);
  const status = ERROR_STATUS[error.code];
  return c.html(<SignUpPage apex={apex} token={await formToken(c)} message={error.message} values={values} />, status);
}

async function withinSignupLimit(c: Context<AppEnv>): Promise<boolean> {
  const limiter = c.env.SIGNUP_LIMITER;
  if (!limiter) return true;
  try {
    return (await limiter.limit({ key: clientKey(c.req.raw) })).success;
  } catch (error) {
    // It guards the pool against being drained by one client: when it fails, sign-up waits.
    console.warn(JSON.stringify({ event: "signup_limiter_failed", requestId: c.get("requestId"), error: String(error) }));
    return false;
  }
}

function unavailable(): AppError {
  return new AppError("signup_unavailable", "No new organisation can be created right now; try again shortly.", {
    headers: { "Retry-After": "30" },
  });
}

interface PreCheck {
  slot: string | null;
  slug_taken: boolean;
  host_taken: boolean;
  host_quarantined: boolean;
}

const PRE_CHECK_SQL = `
SELECT (${PICK_SLOT_SQL}) AS slot,
       EXISTS (SELECT 1 FROM shared.tenants WHERE slug = $1) AS slug_taken,
       EXISTS (SELECT 1 FROM shared.tenant_hosts WHERE host = $2) AS host_taken,
       EXISTS (SELECT 1 FROM shared.released_hosts WHERE host = $2 AND released_at + make_interval(secs => $3::int) > now()) AS host_quarantined`;

function conflict(check: PreCheck, slug: string, host: string): AppError | undefined {
  if (check.slug_taken) return new AppError("slug_taken", `The address ${host} is taken (an organisation called ${slug} exists): choose another.`);
  if (check.host_taken || check.host_quarantined) return new AppError("host_taken", `The address ${host} is taken: choose another.`);
  return undefined;
}

/** POST /signup on the apex. */
export async function signUp(c: Context<AppEnv>, apex: string): Promise<Response> {
  const secret = sessionSecret(c);
  await requireSameOrigin(c);
  const body = await c.req.parseBody();
  const form: Record<string, string> = {};
  for (const [key, value] of Object.entries(body)) if (typeof value === "string") form[key] = value;
  const nonce = getCookie(c, CSRF_COOKIE);
  const given = form.csrf ?? "";
  const expected = nonce ? await signupCsrfToken(secret, nonce) : "";
  const enc = new TextEncoder();
  if (!nonce || !given || !constantTimeEqual(enc.encode(given), enc.encode(expected))) {
    throw new AppError("csrf_failed", "This form's security token is missing or out of date; reload the page and send it again.");
  }
  const values: FormValues = { slug: form.slug, name: form.name, email: form.email, fullName: form.fullName };

  if (!(await withinSignupLimit(c))) {
    return refuse(c, apex, new AppError("rate_limited", `Too many sign-ups from your address; try again in ${SIGNUP_RETRY_AFTER_SECONDS} seconds.`, {
      headers: { "Retry-After": String(SIGNUP_RETRY_AFTER_SECONDS) },
    }), values);
  }

  const slug = (form.slug ?? "").trim();
  const name = (form.name ?? "").trim();
  const problems: string[] = [];
  const slugProblem = slugError(slug);
  if (slugProblem) problems.push(slugProblem);
  if (!name) problems.push("the organisation needs a name");
  if (name.length > 200) problems.push("the organisation's name is longer than 200 characters");
  const admin = UserCreateSchema.safeParse({ email: form.email, password: form.password, fullName: form.fullName?.trim() || null });
  if (!admin.success) problems.push(...admin.error.issues.map((i) => `${i.path.join(".") || "form"}: ${i.message}`));
  // Slugs may hold underscores, DNS names may not: the host's label has hyphens instead (one-to-one,
  // as slugs have no hyphens).
  const host = normalizeHost(`${slug.replace(/_/g, "-")}.${apex}`) ?? "";
  if (!slugProblem) {
    const hostProblem = hostError(`${slug.replace(/_/g, "-")}.${apex}`);
    if (hostProblem) problems.push(hostProblem);
  }
  if (problems.length || !admin.success) {
    return refuse(c, apex, new AppError("validation_error", `Please fix: ${problems.join("; ")}.`), values);
  }

  const config = c.var.config;
  // Slow on purpose (PBKDF2): done before the transaction, so the claim stays short.
  const hashed = await hashPassword(admin.data.password);
  let claimed: { id: number; schema: string; userId: number; token: string } | undefined;
  for (let attempt = 0; attempt < CLAIM_ATTEMPTS && !claimed; attempt++) {
    const [check] = (await queryRows(config, { text: PRE_CHECK_SQL, params: [slug, host, QUARANTINE_SECONDS] })) as PreCheck[];
    const taken = conflict(check!, slug, host);
    if (taken) return refuse(c, apex, taken, values);
    if (!check!.slot) {
      console.warn(JSON.stringify({ event: "signup_unavailable", requestId: c.get("requestId"), reason: attempt ? "slots_taken_by_racing_signups" : "pool_empty" }));
      return refuse(c, apex, unavailable(), values);
    }
    const schema = check!.slot;
    if (!isValidSchemaName(schema)) throw new Error("the pool holds a schema name outside the pattern");
    const token = newClaimToken();
    let results: unknown[][];
    try {
      results = await transactionRows(config, [
        { text: CLAIM_SLOT_SQL, params: [schema, token, slug, name, [host], QUARANTINE_SECONDS] },
        // Acts only if this transaction's claim above succeeded (the slot carries our token).
        {
          text: `INSERT INTO ${quoteIdent(schema)}.users (email, full_name, hashed_password, role)
           SELECT $3, $4, $5, 'admin' WHERE ${CLAIMED_BY_SQL} RETURNING id`,
          params: [schema, token, admin.data.email, admin.data.fullName ?? null, hashed],
        },
      ]);
    } catch (error) {
      if (sqlState(error) !== "23505") throw error;
      // A slug or host taken meanwhile by another sign-up (or the CLI): nothing was written.
      const [again] = (await queryRows(config, { text: PRE_CHECK_SQL, params: [slug, host, QUARANTINE_SECONDS] })) as PreCheck[];
      return refuse(c, apex, conflict(again!, slug, host) ?? new AppError("slug_taken", `The address ${host} is taken: choose another.`), values);
    }
    const tenant = results[0]![0] as { id: number; schema: string } | undefined;
    const user = results[1]![0] as { id: number } | undefined;
    if (tenant && user) claimed = { id: tenant.id, schema: tenant.schema, userId: user.id, token };
  }
  if (!claimed) {
    console.warn(JSON.stringify({ event: "signup_unavailable", requestId: c.get("requestId"), reason: "slots_taken_by_racing_signups" }));
    return refuse(c, apex, unavailable(), values);
  }
  // This isolate may remember the host as unknown (someone looked before it existed): forget that.
  await evictHost(host, undefined);
  console.log(JSON.stringify({ event: "signup", requestId: c.get("requestId"), tenantId: claimed.id, schema: claimed.schema }));
  const link = await signHandoff(secret, { t: claimed.id, s: claimed.schema, u: claimed.userId, n: claimed.token, exp: Math.floor(Date.now() / 1000) + HANDOFF_SECONDS });
  const here = new URL(c.req.url);
  return c.redirect(`${here.protocol}//${host}${here.port ? `:${here.port}` : ""}/welcome?link=${encodeURIComponent(link)}`, 303);
}

/** A one-time sign-in link's content: tenant (id and schema), user, the slot's claim token, expiry. */
interface Handoff {
  t: number;
  s: string;
  u: number;
  n: string;
  exp: number;
}

async function signHandoff(secret: string, handoff: Handoff): Promise<string> {
  const payload = b64(new TextEncoder().encode(JSON.stringify(handoff)));
  return `${payload}.${b64(await mac(secret, "signup-handoff", payload))}`;
}

async function readHandoff(secret: string, value: string): Promise<Handoff | undefined> {
  if (value.length > 1024) return undefined;
  const [payload, signature, ...rest] = value.split(".");
  if (!payload || !signature || rest.length) return undefined;
  const enc = new TextEncoder();
  if (!constantTimeEqual(enc.encode(signature), enc.encode(b64(await mac(secret, "signup-handoff", payload))))) return undefined;
  try {
    const h = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))) as Partial<Handoff>;
    if (!Number.isInteger(h.t) || typeof h.s !== "string" || !Number.isInteger(h.u) || typeof h.n !== "string" || !Number.isInteger(h.exp)) return undefined;
    if (h.exp! * 1000 <= Date.now()) return undefined;
    return h as Handoff;
  } catch {
    return undefined;
  }
}

/**
 * GET /welcome?link=... on a tenant host: a valid, unexpired link made for THIS tenant (its id and
 * schema) is exchanged, once, for this host's session cookie. Once: the exchange replaces the slot's
 * claim token the link carries (a compare-and-set), so a second use finds no match.
 */
export async function welcome(c: Context<AppEnv>): Promise<Response> {
  const secret = sessionSecret(c);
  const refused = new AppError("sign_in_link_invalid", "This sign-in link is not valid here: it was already used, has expired, or is for another organisation. Sign in with your email and password.");
  const handoff = await readHandoff(secret, c.req.query("link") ?? "");
  const tenant = c.var.tenant;
  if (!handoff || handoff.t !== tenant.id || handoff.s !== tenant.schema) throw refused;
  const used = await catalogDatabase(c.var.config)
    .update(tenantPool)
    .set({ claimToken: newClaimToken() })
    .where(eqBoth(handoff))
    .returning({ schema: tenantPool.schemaName });
  if (used.length !== 1) throw refused;
  const { users } = c.var.tables;
  const [user] = await c.var.db
    .select({ id: users.id, email: users.email, fullName: users.fullName, role: users.role, isActive: users.isActive })
    .from(users)
    .where(eq(users.id, handoff.u))
    .limit(1);
  if (!user || !user.isActive) throw refused;
  await startSession(c, { id: user.id, email: user.email, fullName: user.fullName, role: user.role });
  return c.redirect("/", 303);
}

function eqBoth(handoff: Handoff) {
  return and(eq(tenantPool.schemaName, handoff.s), eq(tenantPool.claimToken, handoff.n));
}
