/** @jsxImportSource hono/jsx */
// Server-rendered pages for one tenant (Hono's JSX): the home page with sign-up and sign-in, and a
// signed-in user's items (list, create, change status, delete). Plain HTML forms, no JavaScript.
// Tenant data only through c.var.db / c.var.tables, as in the API; every form carries a CSRF token.
import type { Context } from "hono";
import { Hono } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import { and, asc, eq } from "drizzle-orm";
import type { AppEnv } from "../env.ts";
import { AppError, isUniqueViolation } from "../errors/index.ts";
import { csrfToken, csrfTokenMatches, randomHex } from "../auth/credentials.ts";
import { requireUser, sessionSecret, type AuthUser } from "../auth/middleware.ts";
import { endSession, signIn, startSession } from "../auth/sign-in.ts";
import { hashPassword } from "../security/password.ts";
import { ItemStatusSchema, UserCreateSchema } from "../routes/schemas.ts";
import { Layout } from "./layout.tsx";
import { welcome } from "./signup.tsx";

const CSRF_COOKIE = "csrf";
const STATUSES = ItemStatusSchema.options;

/** The browser's CSRF nonce (a random cookie, set on first sight) and the token forms carry. */
async function formToken(c: Context<AppEnv>): Promise<string> {
  let nonce = getCookie(c, CSRF_COOKIE);
  if (!nonce || !/^[0-9a-f]{32}$/.test(nonce)) {
    nonce = randomHex(16);
    setCookie(c, CSRF_COOKIE, nonce, { path: "/", httpOnly: true, secure: true, sameSite: "Lax" });
  }
  return csrfToken(sessionSecret(c), c.var.tenant.id, nonce);
}

/** The posted form, after its CSRF token is checked against this browser's nonce: 403 otherwise. */
async function postedForm(c: Context<AppEnv>): Promise<Record<string, string>> {
  const body = await c.req.parseBody();
  const form: Record<string, string> = {};
  for (const [key, value] of Object.entries(body)) if (typeof value === "string") form[key] = value;
  const nonce = getCookie(c, CSRF_COOKIE);
  if (!nonce || !form.csrf || !(await csrfTokenMatches(sessionSecret(c), c.var.tenant.id, nonce, form.csrf))) {
    throw new AppError("csrf_failed", "This form's security token is missing or out of date; reload the page and send it again.");
  }
  return form;
}

/** The signed-in browser user (session cookie only), or undefined. */
function sessionUser(c: Context<AppEnv>): AuthUser | undefined {
  const auth = c.var.auth;
  return auth.kind === "user" && auth.via === "session" ? auth.user : undefined;
}

function Csrf(props: { token: string }) {
  return <input type="hidden" name="csrf" value={props.token} />;
}

function Notice(props: { message?: string }) {
  return props.message ? (
    <p class="notice" role="alert">
      {props.message}
    </p>
  ) : null;
}

function Home(props: { tenant: string; token: string; user?: AuthUser; message?: string; email?: string }) {
  return (
    <Layout title={props.tenant}>
      <h1>{props.tenant}</h1>
      <Notice message={props.message} />
      {props.user ? (
        <section aria-labelledby="you">
          <h2 id="you">Signed in as {props.user.email}</h2>
          <p>
            <a href="/my/items">Your items</a>
          </p>
          <form method="post" action="/sign-out">
            <Csrf token={props.token} />
            <button type="submit">Sign out</button>
          </form>
        </section>
      ) : (
        <div class="columns">
          <section aria-labelledby="sign-in">
            <h2 id="sign-in">Sign in</h2>
            <form method="post" action="/sign-in">
              <Csrf token={props.token} />
              <label for="in-email">Email</label>
              <input id="in-email" name="email" type="email" autocomplete="username" required value={props.email ?? ""} />
              <label for="in-password">Password</label>
              <input id="in-password" name="password" type="password" autocomplete="current-password" required />
              <button type="submit">Sign in</button>
            </form>
          </section>
          <section aria-labelledby="sign-up">
            <h2 id="sign-up">Sign up</h2>
            <form method="post" action="/sign-up">
              <Csrf token={props.token} />
              <label for="up-name">Name (optional)</label>
              <input id="up-name" name="fullName" type="text" autocomplete="name" />
              <label for="up-email">Email</label>
              <input id="up-email" name="email" type="email" autocomplete="email" required />
              <label for="up-password">Password (at least 8 characters)</label>
              <input id="up-password" name="password" type="password" autocomplete="new-password" minlength={8} required />
              <button type="submit">Sign up</button>
            </form>
          </section>
        </div>
      )}
    </Layout>
  );
}

type ItemRow = { id: number; title: string; description: string | null; status: string };

function Items(props: { tenant: string; token: string; user: AuthUser; items: ItemRow[]; message?: string }) {
  return (
    <Layout title={`Your items · ${props.tenant}`}>
      <h1>Your items at {props.tenant}</h1>
      <p>
        Signed in as {props.user.email} · <a href="/">Home</a>
      </p>
      <Notice message={props.message} />
      <section aria-labelledby="new-item">
        <h2 id="new-item">New item</h2>
        <form method="post" action="/my/items">
          <Csrf token={props.token} />
          <label for="title">Title</label>
          <input id="title" name="title" type="text" required maxlength={200} />
          <label for="description">Description (optional)</label>
          <input id="description" name="description" type="text" maxlength={2000} />
          <label for="status">Status</label>
          <select id="status" name="status">
            {STATUSES.map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
          <button type="submit">Create</button>
        </form>
      </section>
      <section aria-labelledby="list">
        <h2 id="list">Items ({props.items.length})</h2>
        {props.items.length === 0 ? (
          <p>No items yet.</p>
        ) : (
          <ul class="items">
            {props.items.map((item) => (
              <li>
                <h3>{item.title}</h3>
                {item.description ? <p>{item.description}</p> : null}
                <form method="post" action={`/my/items/${item.id}/status`} class="inline">
                  <Csrf token={props.token} />
                  <label for={`status-${item.id}`}>Status of {item.title}</label>
                  <select id={`status-${item.id}`} name="status">
                    {STATUSES.map((s) => (
                      <option value={s} selected={s === item.status}>
                        {s}
                      </option>
                    ))}
                  </select>
                  <button type="submit">Save</button>
                </form>
                <form method="post" action={`/my/items/${item.id}/delete`} class="inline">
                  <Csrf token={props.token} />
                  <button type="submit" aria-label={`Delete ${item.title}`}>
                    Delete
                  </button>
                </form>
              </li>
            ))}
          </ul>
        )}
      </section>
    </Layout>
  );
}

async function renderItems(c: Context<AppEnv>, user: AuthUser, message?: string, status: 200 | 400 = 200) {
  const { items } = c.var.tables;
  const rows = await c.var.db.select().from(items).where(eq(items.ownerId, user.id)).orderBy(asc(items.id));
  return c.html(<Items tenant={c.var.tenant.name} token={await formToken(c)} user={user} items={rows} message={message} />, status);
}

function itemId(c: Context<AppEnv>): number {
  const id = Number(c.req.param("id"));
  if (!Number.isInteger(id) || id < 1 || id > 2_147_483_647) throw new AppError("item_not_found", "No such item of yours.");
  return id;
}

/** The pages' routes, behind the same tenancy and authentication middleware as the API. */
export const pageRoutes = new Hono<AppEnv>()
  .get("/", async (c) => c.html(<Home tenant={c.var.tenant.name} token={await formToken(c)} user={sessionUser(c)} />))
  // The one-time sign-in link that sign-up on the apex sends the new admin to.
  .get("/welcome", welcome)
  .post("/sign-up", async (c) => {
    const form = await postedForm(c);
    const parsed = UserCreateSchema.safeParse({ email: form.email, password: form.password, fullName: form.fullName || null });
    const again = async (message: string, status: 400 | 409) =>
      c.html(<Home tenant={c.var.tenant.name} token={await formToken(c)} message={message} />, status);
    if (!parsed.success) return again(parsed.error.issues.map((i) => i.message).join("; "), 400);
    const { users } = c.var.tables;
    let created;
    try {
      [created] = await c.var.db
        .insert(users)
        .values({ email: parsed.data.email, fullName: parsed.data.fullName ?? null, hashedPassword: await hashPassword(parsed.data.password) })
        .returning();
    } catch (error) {
      if (isUniqueViolation(error, "users_email_unique")) return again(`A user with email ${parsed.data.email} already exists here: sign in instead.`, 409);
      throw error;
    }
    await startSession(c, { id: created!.id, email: created!.email, fullName: created!.fullName, role: created!.role });
    return c.redirect("/my/items", 303);
  })
  .post("/sign-in", async (c) => {
    const form = await postedForm(c);
    try {
      const user = await signIn(c, form.email ?? "", form.password ?? "");
      await startSession(c, user);
    } catch (error) {
      if (error instanceof AppError && error.code === "invalid_credentials") {
        return c.html(<Home tenant={c.var.tenant.name} token={await formToken(c)} message={error.message} email={form.email} />, 401);
      }
      throw error;
    }
    return c.redirect("/my/items", 303);
  })
  .post("/sign-out", async (c) => {
    await postedForm(c);
    endSession(c);
    return c.redirect("/", 303);
  })
  .get("/my/items", async (c) => renderItems(c, requireUser(c)))
  .post("/my/items", async (c) => {
    const user = requireUser(c);
    const form = await postedForm(c);
    const title = (form.title ?? "").trim();
    const status = ItemStatusSchema.safeParse(form.status || "draft");
    if (!title || title.length > 200) return renderItems(c, user, "The title must be 1 to 200 characters.", 400);
    if (!status.success) return renderItems(c, user, "The status must be draft, published or archived.", 400);
    const { items } = c.var.tables;
    await c.var.db.insert(items).values({ title, description: form.description?.trim() || null, status: status.data, ownerId: user.id });
    return c.redirect("/my/items", 303);
  })
  .post("/my/items/:id/status", async (c) => {
    const user = requireUser(c);
    const form = await postedForm(c);
    const status = ItemStatusSchema.safeParse(form.status);
    if (!status.success) return renderItems(c, user, "The status must be draft, published or archived.", 400);
    const { items } = c.var.tables;
    const [changed] = await c.var.db
      .update(items)
      .set({ status: status.data })
      .where(and(eq(items.id, itemId(c)), eq(items.ownerId, user.id)))
      .returning({ id: items.id });
    if (!changed) throw new AppError("item_not_found", "No such item of yours.");
    return c.redirect("/my/items", 303);
  })
  .post("/my/items/:id/delete", async (c) => {
    const user = requireUser(c);
    await postedForm(c);
    const { items } = c.var.tables;
    const [gone] = await c.var.db
      .delete(items)
      .where(and(eq(items.id, itemId(c)), eq(items.ownerId, user.id)))
      .returning({ id: items.id });
    if (!gone) throw new AppError("item_not_found", "No such item of yours.");
    return c.redirect("/my/items", 303);
  });
