// Which constraint a database error violated, the same on plain PostgreSQL and on Citus. No Worker
// types here: the Node CLIs and tests use it too.

export type ErrorChain = {
  name?: unknown;
  code?: unknown;
  cause?: unknown;
  message?: unknown;
  constraint?: unknown;
  sourceError?: unknown;
  query?: unknown;
};

/** The error and its causes (drizzle wraps the driver's error in `cause`), at most 4 deep. */
export function chain(error: unknown): ErrorChain[] {
  const out: ErrorChain[] = [];
  for (let e = error as ErrorChain | undefined, depth = 0; e && typeof e === "object" && depth < 4; depth++) {
    out.push(e);
    e = e.cause as ErrorChain | undefined;
  }
  return out;
}

/** PostgreSQL's SQLSTATE of a driver error, looking through drizzle's wrapper. */
export function sqlState(error: unknown): string | undefined {
  for (const e of chain(error)) if (typeof e.code === "string" && /^[0-9A-Z]{5}$/.test(e.code)) return e.code;
  return undefined;
}

/**
 * The constraint a driver error violated, by its base name as the migrations define it. PostgreSQL
 * reports it in the error's `constraint` field; Citus, which runs the statement on a worker's shard,
 * passes only the message on, naming the shard's copy with the shard id appended
 * (`users_email_unique_102012`): the name is then read from the message and the suffix dropped.
 */
export function violatedConstraint(error: unknown): string | undefined {
  for (const e of chain(error)) {
    const field = e.constraint;
    if (typeof field === "string" && field) return baseConstraintName(field);
    if (typeof e.message === "string") {
      const match = /\bconstraint "((?:[^"]|"")+)"/.exec(e.message);
      if (match) return baseConstraintName(match[1]!.replace(/""/g, '"'));
    }
  }
  return undefined;
}

/** A constraint's name without the shard id Citus appends to a shard's copy (`_102012`). */
export function baseConstraintName(name: string): string {
  return name.replace(/_\d{6,}$/, "");
}

/**
 * A unique violation (SQLSTATE 23505) of `constraint` (its base name); also true when the error
 * does not name the constraint at all, as the SQLSTATE alone said before.
 */
export function isUniqueViolation(error: unknown, constraint: string): boolean {
  if (sqlState(error) !== "23505") return false;
  const name = violatedConstraint(error);
  return name === undefined || name === constraint;
}

