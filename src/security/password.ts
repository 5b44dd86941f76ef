// Password hashing with PBKDF2-SHA256 from WebCrypto (no Node APIs in the Worker).
// Stored as `pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>`: the iteration count travels with
// each hash, so hashes made with an older count (50,000 before) still verify, and are upgraded at
// the next successful sign-in.

/** workerd's maximum for PBKDF2 (it refuses more). */
export const ITERATIONS = 100_000;
const MIN_ITERATIONS = 1_000;

function toHex(bytes: ArrayBuffer | Uint8Array): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function fromHex(hex: string): Uint8Array<ArrayBuffer> | undefined {
  if (hex.length % 2 !== 0 || !/^[0-9a-f]*$/.test(hex)) return undefined;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

async function derive(password: string, salt: Uint8Array<ArrayBuffer>, iterations: number): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(password), "PBKDF2", false, ["deriveBits"]);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, key, 256));
}

/** Equal length and contents, in time that does not depend on where they differ. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** `pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>` */
export async function hashPassword(password: string, iterations = ITERATIONS): Promise<string> {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  return `pbkdf2_sha256$${iterations}$${toHex(salt)}$${toHex(await derive(password, salt, iterations))}`;
}

export type Verification = { ok: false } | { ok: true; /** Made with fewer iterations than today's: store a new hash. */ outdated: boolean };

/** Checks a password against a stored hash of any supported iteration count. */
export async function verifyPassword(password: string, stored: string): Promise<Verification> {
  const [scheme, count, saltHex, hashHex, ...rest] = stored.split("$");
  const iterations = Number(count);
  const salt = fromHex(saltHex ?? "");
  const expected = fromHex(hashHex ?? "");
  if (scheme !== "pbkdf2_sha256" || rest.length || !Number.isInteger(iterations) || iterations < MIN_ITERATIONS || iterations > ITERATIONS || !salt || !expected || expected.length !== 32) {
    return { ok: false };
  }
  const actual = await derive(password, salt, iterations);
  return constantTimeEqual(actual, expected) ? { ok: true, outdated: iterations < ITERATIONS } : { ok: false };
}

const DUMMY_SALT = new Uint8Array(16);
/** The same work as a real check, for a sign-in whose email matches no user (no timing oracle). */
export async function burnPasswordCheck(password: string): Promise<void> {
  await derive(password, DUMMY_SALT, ITERATIONS);
}
