// Migration files read with PostgreSQL's own parser (libpg-query: the server's grammar compiled to
// WebAssembly, no native build and no download at install). Each file is parsed once, when the
// migrations are loaded:
// - every tenant statement is checked: each object it creates, alters or references must be
//   qualified with the placeholder schema `tenant` (or `shared`, for reading), or be one of
//   PostgreSQL's built-in types and functions; anything else is refused with the file, the
//   statement number and line, and the object;
// - the positions of the placeholder qualifiers are taken from the parse tree (never from the
//   text), so string literals, comments and a table alias that happens to be named "tenant" are
//   never rewritten; binding a file to a tenant's schema is then a splice of precomputed pieces;
// - each statement is ended with its own `;` on a line of its own, so a statement whose last line
//   is a comment keeps it.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { setFlagsFromString } from "node:v8";
import type { ScanToken } from "libpg-query";
import { PLACEHOLDER_SCHEMA, SHARED_SCHEMA, TENANT_SCHEMA_PREFIX, quoteIdent } from "../../src/tenancy/naming.ts";

// The parser is 1.7 MB of WebAssembly, of which a CLI run uses a little, briefly. V8 would also
// compile all of it with its optimizing compiler in the background, which costs a short-lived
// command about 0.7 s of CPU; its baseline compiler alone is plenty for a few files.
setFlagsFromString("--liftoff-only");
const { loadModule, parseSync, scanSync } = await import("libpg-query");
await loadModule();

export type Track = "shared" | "tenant";

/** What a reference does to the object it names. */
export type Role = "create" | "alter" | "write" | "read" | "fk" | "use";

export interface ObjectRef {
  /** `table`, `index`, `type`, `function`, `sequence`, ... or `relation` when the grammar does not say. */
  what: string;
  role: Role;
  /** The name as written: `[schema, name]`, `[name]`, or longer for columns (`[schema, table, column]`). */
  parts: string[];
  /** How many leading parts qualify the name with a schema: 0 (unqualified), 1, or 2 (`db.schema`). */
  qualified: number;
}

export interface ParsedStatement {
  /** 1-based, counted over the whole file. */
  number: number;
  /** 1-based line of the file where the statement starts. */
  line: number;
  /** The parse tree's statement type, e.g. `CreateStmt`, `AlterTableStmt`. */
  kind: string;
  text: string;
  /** The statement's parse tree (the body under `kind`). */
  node: Record<string, unknown>;
  /** Every named object the statement creates, alters, writes, reads or uses. */
  refs: ObjectRef[];
}

export interface Problem {
  statement: number;
  line: number;
  message: string;
}

export interface ParsedSql {
  /** The text to execute: the file's statements, each ended by `;`. */
  sql: string;
  /** `sql` cut at every placeholder qualifier: `pieces.join('"tenant_x"')` binds it to a schema. */
  pieces: string[];
  /**
   * Each statement's text (as `statements[i].text`) cut the same way, to send one statement per
   * query: Citus refuses several statements in one query string when they include CREATE INDEX or
   * ADD CONSTRAINT on distributed tables (citusdata/citus#6608).
   */
  statementPieces: string[][];
  statements: ParsedStatement[];
  problems: Problem[];
}

const BREAKPOINT = "--> statement-breakpoint";
const BUILTINS = JSON.parse(readFileSync(resolve(import.meta.dirname, "pg-builtins.json"), "utf8")) as {
  types: string[];
  functions: string[];
};
const BUILTIN_TYPES = new Set([...BUILTINS.types, "serial", "serial2", "serial4", "serial8", "smallserial", "bigserial"]);
const BUILTIN_FUNCTIONS = new Set(BUILTINS.functions);

type Node = Record<string, unknown>;

function isObject(value: unknown): value is Node {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `{ String: { sval } }` nodes of a name list, or undefined when it is not a plain name list. */
function nameList(value: unknown): string[] | undefined {
  const list = isObject(value) && isObject(value.List) ? value.List.items : value;
  if (!Array.isArray(list) || list.length === 0) return undefined;
  const names: string[] = [];
  for (const item of list) {
    if (!isObject(item) || !isObject(item.String)) return undefined;
    names.push(String(item.String.sval ?? ""));
  }
  return names;
}

export function displayName(parts: string[]): string {
  return parts.map(quoteIdent).join(".");
}

/** A byte offset of a UTF-8 encoding of `text` -> the string index. */
function byteIndexer(text: string): (byte: number) => number {
  if (!/[^\x00-\x7f]/.test(text)) return (byte) => byte;
  const map = new Uint32Array(Buffer.byteLength(text) + 1);
  let byte = 0;
  let index = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch);
    for (let k = 0; k < n; k++) map[byte + k] = index;
    byte += n;
    index += ch.length;
  }
  map[byte] = index;
  return (b) => map[Math.min(b, byte)]!;
}

function lineAt(text: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

const COMMENT_TOKENS = new Set(["SQL_COMMENT", "C_COMMENT"]);

/** The identifier a token spells (quoted: as written; unquoted: folded to lower case), if any. */
function identifierOf(token: ScanToken | undefined): string | undefined {
  if (!token) return undefined;
  if (token.text.startsWith('"')) return token.text.slice(1, -1).replaceAll('""', '"');
  if (token.tokenName === "IDENT" || token.keywordName !== "NO_KEYWORD") {
    return /^[A-Za-z_][A-Za-z0-9_$]*$/.test(token.text) ? token.text.replace(/[A-Z]/g, (c) => c.toLowerCase()) : undefined;
  }
  return undefined;
}

/**
 * One statement's names, gathered from its parse tree. Names that carry a location (relations,
 * types, function calls, column references) are matched against the scanner's tokens there;
 * names without one (CREATE TYPE's name, DROP's objects, ...) are matched in order against the
 * statement's tokens that no located name claimed.
 */
class StatementNames {
  readonly refs: ObjectRef[] = [];
  readonly problems: string[] = [];
  /** Token indexes of placeholder qualifiers, to rewrite. */
  readonly qualifiers = new Set<number>();
  private readonly claimed = new Set<number>();
  private readonly unlocated: Array<{ ref: ObjectRef; qualified: number }> = [];
  readonly cteNames = new Set<string>();

  private readonly tokens: ScanToken[];
  private readonly first: number;
  private readonly end: number;

  /** The statement's tokens are `tokens[first..end)`. */
  constructor(tokens: ScanToken[], first: number, end: number) {
    this.tokens = tokens;
    this.first = first;
    this.end = end;
  }

  /** Index of the token starting at byte `location`, or -1. */
  private tokenAt(location: number): number {
    for (let i = this.first; i < this.end; i++) {
      if (this.tokens[i]!.start === location) return i;
      if (this.tokens[i]!.start > location) break;
    }
    return -1;
  }

  /** Do tokens from `i` spell `parts` (`a . b . c`)? */
  private spells(i: number, parts: string[]): boolean {
    for (let k = 0; k < parts.length; k++) {
      const at = i + 2 * k;
      if (at >= this.end) return false;
      if (parts[k] === "*" ? this.tokens[at]!.text !== "*" : identifierOf(this.tokens[at]) !== parts[k]) return false;
      if (k < parts.length - 1 && this.tokens[at + 1]?.text !== ".") return false;
    }
    return true;
  }

  /** Marks the qualifier tokens of a name spelled from token `i` (all parts but the last). */
  private claim(i: number, parts: string[], qualified: number): void {
    for (let k = 0; k < parts.length - 1; k++) this.claimed.add(i + 2 * k);
    if (qualified > 0 && parts[0] === PLACEHOLDER_SCHEMA) this.qualifiers.add(i);
  }

  /**
   * A name. `qualified` is how many leading parts are schema (1) or catalog+schema (2) rather than
   * the object's own name and its table (for columns, triggers, ...).
   */
  add(partial: Omit<ObjectRef, "qualified">, location: number | undefined, qualified: number): void {
    const ref = { ...partial, qualified };
    this.refs.push(ref);
    if (location === undefined) {
      if (ref.parts.length > 1) this.unlocated.push({ ref, qualified });
      return;
    }
    const i = this.tokenAt(location);
    if (i >= 0 && this.spells(i, ref.parts)) this.claim(i, ref.parts, qualified);
    else if (qualified > 0 && ref.parts[0] !== "pg_catalog") {
      // The grammar put the name somewhere the scanner does not show it: refuse rather than guess.
      this.problems.push(`cannot find where ${ref.what} ${displayName(ref.parts)} is written; write it as a plain qualified name`);
    }
  }

  /** A table-qualified column reference (`alias.column`): its qualifier is not a schema. */
  addColumnQualifier(location: number, parts: string[]): void {
    const i = this.tokenAt(location);
    if (i >= 0 && this.spells(i, parts)) this.claim(i, parts, 0);
  }

  /** Places the names without locations, then refuses any qualifier nothing accounts for. */
  finish(): void {
    for (const { ref, qualified } of this.unlocated) {
      let found = -1;
      for (let i = this.first; i < this.end && found < 0; i++) {
        if (!this.claimed.has(i) && this.spells(i, ref.parts)) found = i;
      }
      if (found >= 0) this.claim(found, ref.parts, qualified);
      else this.problems.push(`cannot find where ${ref.what} ${displayName(ref.parts)} is written; write it as a plain qualified name`);
    }
    for (let i = this.first; i < this.end - 1; i++) {
      if (this.claimed.has(i) || this.tokens[i + 1]!.text !== ".") continue;
      const name = identifierOf(this.tokens[i]);
      if (name === undefined && !this.tokens[i]!.text.startsWith('"') && !/^u&"/i.test(this.tokens[i]!.text)) continue;
      const next = this.tokens[i + 2]?.text ?? "";
      this.problems.push(
        `cannot tell what ${this.tokens[i]!.text}.${next} names (a construct the migration checker does not know); ` +
          "write it with plain schema-qualified names",
      );
    }
  }
}

/** The statements a tenant migration may contain; anything else is refused with the reason. */
const REFUSED_STATEMENTS: Record<string, string> = {
  CreateSchemaStmt: "it creates or drops a schema; the runner creates each tenant's schema itself",
  AlterObjectSchemaStmt: "it moves an object to another schema; tenant objects stay in the tenant's schema",
  DoStmt: "a DO block's body is a string literal, which the checker cannot see into and the runner cannot bind to each tenant's schema",
  TransactionStmt: "the runner wraps migrations in its own transactions (BEGIN/COMMIT/SAVEPOINT are not allowed)",
  CreateExtensionStmt: "extensions are database-wide: create them in a shared migration",
  AlterDefaultPrivilegesStmt: "it names a schema (not an object in it), which the runner cannot bind",
};

const ALLOWED_STATEMENTS = new Set([
  "CreateStmt",
  "AlterTableStmt",
  "IndexStmt",
  "CreateEnumStmt",
  "AlterEnumStmt",
  "CompositeTypeStmt",
  "CreateDomainStmt",
  "AlterDomainStmt",
  "DropStmt",
  "RenameStmt",
  "CommentStmt",
  "CreateSeqStmt",
  "AlterSeqStmt",
  "ViewStmt",
  "CreateTableAsStmt",
  "InsertStmt",
  "UpdateStmt",
  "DeleteStmt",
  "MergeStmt",
  "SelectStmt",
  "CreateFunctionStmt",
  "CreateTrigStmt",
  "CreatePolicyStmt",
  "AlterPolicyStmt",
  "GrantStmt",
  "CreateStatsStmt",
  "VariableSetStmt",
]);

const DROP_KINDS: Record<string, string> = {
  OBJECT_TABLE: "table",
  OBJECT_INDEX: "index",
  OBJECT_SEQUENCE: "sequence",
  OBJECT_VIEW: "view",
  OBJECT_MATVIEW: "materialized view",
  OBJECT_TYPE: "type",
  OBJECT_DOMAIN: "domain",
  OBJECT_FUNCTION: "function",
  OBJECT_PROCEDURE: "procedure",
  OBJECT_TRIGGER: "trigger",
  OBJECT_POLICY: "policy",
  OBJECT_STATISTIC_EXT: "statistics object",
  OBJECT_TABCONSTRAINT: "constraint",
  OBJECT_COLUMN: "column",
};

/** Object kinds whose name lists end in `table, name` rather than the object's own name. */
const ON_TABLE = new Set(["OBJECT_TRIGGER", "OBJECT_POLICY", "OBJECT_RULE", "OBJECT_TABCONSTRAINT", "OBJECT_COLUMN"]);

function relationKind(objtype: unknown, fallback: string): string {
  return (typeof objtype === "string" && DROP_KINDS[objtype]) || fallback;
}

/** Walks one statement's parse tree, collecting its names into `names`. */
class Walker {
  private readonly names: StatementNames;

  constructor(names: StatementNames) {
    this.names = names;
  }

  rangeVar(rv: Node, role: Role, what: string): void {
    const parts = [rv.catalogname, rv.schemaname, rv.relname].filter((p): p is string => typeof p === "string");
    this.names.add({ what, role, parts }, typeof rv.location === "number" ? rv.location : undefined, parts.length - 1);
  }

  /** A name list without a location; `tail` trailing parts are not the object's (column, trigger name). */
  list(value: unknown, role: Role, what: string, tail = 0): void {
    if (isObject(value) && isObject(value.TypeName)) return this.typeName(value.TypeName, role, what);
    if (isObject(value) && isObject(value.ObjectWithArgs)) return this.objectWithArgs(value.ObjectWithArgs, role, what);
    const parts = nameList(value);
    if (!parts) return this.walk(value);
    this.names.add({ what, role, parts }, undefined, Math.max(0, parts.length - 1 - tail));
  }

  typeName(tn: Node, role: Role = "use", what = "type"): void {
    const parts = nameList(tn.names);
    if (!parts) return this.walk(tn.typmods);
    const pctType = tn.pct_type === true;
    this.names.add(
      { what: pctType ? "column" : what, role, parts },
      typeof tn.location === "number" ? tn.location : undefined,
      Math.max(0, parts.length - (pctType ? 2 : 1)),
    );
    this.walk(tn.typmods);
  }

  objectWithArgs(owa: Node, role: Role, what: string): void {
    const parts = nameList(owa.objname);
    if (parts) this.names.add({ what, role, parts }, undefined, parts.length - 1);
    for (const key of ["objargs", "objfuncargs"]) this.walk(owa[key]);
  }

  /** Generic descent: every node below, with the references it makes read by default. */
  walk(value: unknown, role: Role = "read"): void {
    if (Array.isArray(value)) {
      for (const item of value) this.walk(item, role);
      return;
    }
    if (!isObject(value)) return;
    const keys = Object.keys(value);
    if (keys.length === 1 && /^[A-Z]/.test(keys[0]!) && isObject(value[keys[0]!])) {
      return this.node(keys[0]!, value[keys[0]!] as Node, role);
    }
    if (typeof value.relname === "string") return this.rangeVar(value, role, "relation");
    if (Array.isArray(value.names) && "typemod" in value) return this.typeName(value);
    for (const key of keys) this.walk(value[key], role);
  }

  private fields(body: Node, skip: string[], role: Role = "read"): void {
    for (const [key, val] of Object.entries(body)) if (!skip.includes(key)) this.walk(val, role);
  }

  node(type: string, body: Node, role: Role): void {
    switch (type) {
      case "RangeVar":
        return this.rangeVar(body, role, "relation");
      case "TypeName":
        return this.typeName(body);
      case "FuncCall": {
        const parts = nameList(body.funcname) ?? [];
        this.names.add({ what: "function", role: "use", parts }, typeof body.location === "number" ? body.location : undefined, parts.length - 1);
        return this.fields(body, ["funcname"]);
      }
      case "ColumnRef": {
        const fields = Array.isArray(body.fields) ? body.fields : [];
        const parts = fields.map((f) => (isObject(f) && isObject(f.String) ? String(f.String.sval) : "*"));
        const location = typeof body.location === "number" ? body.location : undefined;
        if (parts.length >= 3) {
          // schema.table.column (or catalog.schema.table.column): the leading parts are a schema.
          this.names.add({ what: "column", role: "read", parts }, location, parts.length - 2);
        } else if (parts.length === 2 && location !== undefined) {
          // table.column: the qualifier is a table or an alias (maybe one named "tenant"), not a schema.
          this.names.addColumnQualifier(location, parts);
        }
        return;
      }
      case "A_Expr": {
        const op = nameList(body.name);
        if (op && op.length > 1) this.names.add({ what: "operator", role: "use", parts: op }, undefined, op.length - 1);
        return this.fields(body, ["name"]);
      }
      case "CommonTableExpr":
        if (typeof body.ctename === "string") this.names.cteNames.add(body.ctename);
        return this.fields(body, []);
      case "Constraint":
        if (isObject(body.pktable)) this.rangeVar(body.pktable, "fk", "table");
        for (const option of Array.isArray(body.options) ? body.options : []) {
          const def = isObject(option) && isObject(option.DefElem) ? option.DefElem : undefined;
          // An identity's sequence: unqualified, PostgreSQL puts it beside its table.
          if (def?.defname === "sequence_name") {
            if ((nameList(def.arg)?.length ?? 0) > 1) this.list(def.arg, "create", "sequence");
          } else this.walk(option);
        }
        return this.fields(body, ["pktable", "options"]);
      case "DefElem":
        if (body.defname === "owned_by") return this.list(body.arg, "alter", "column", 1);
        if (body.defname === "sequence_name") return this.list(body.arg, "create", "sequence");
        return this.fields(body, []);
      case "IndexElem":
        for (const key of ["opclass", "collation"]) {
          const parts = nameList(body[key]);
          if (parts && parts.length > 1) this.names.add({ what: key === "opclass" ? "operator class" : "collation", role: "use", parts }, undefined, parts.length - 1);
        }
        return this.fields(body, ["opclass", "collation"]);
      case "CollateClause": {
        const parts = nameList(body.collname);
        if (parts && parts.length > 1) this.names.add({ what: "collation", role: "use", parts }, undefined, parts.length - 1);
        return this.fields(body, ["collname"]);
      }
      case "AlterTableCmd":
        // INHERIT parent / ATTACH PARTITION: the other table is changed too.
        if (isObject(body.def) && isObject(body.def.RangeVar)) this.rangeVar(body.def.RangeVar, "alter", "table");
        else this.walk(body.def);
        return this.fields(body, ["def"]);
      case "PartitionCmd":
        if (isObject(body.name)) this.rangeVar(body.name, "alter", "table");
        return this.fields(body, ["name"]);
      default:
        // A statement inside a function body or a WITH: its own target gets its role.
        if (ALLOWED_STATEMENTS.has(type)) return this.statement(type, body);
        return this.fields(body, [], role);
    }
  }

  /** The statement itself: its target object(s) get their role, the rest is read. */
  statement(kind: string, s: Node): void {
    const rv = (key: string, role: Role, what: string) => {
      if (isObject(s[key])) this.rangeVar(s[key], role, what);
    };
    switch (kind) {
      case "CreateStmt":
        rv("relation", "create", "table");
        for (const parent of Array.isArray(s.inhRelations) ? s.inhRelations : []) {
          if (isObject(parent) && isObject(parent.RangeVar)) this.rangeVar(parent.RangeVar, "alter", "table");
        }
        if (isObject(s.ofTypename)) this.typeName(s.ofTypename);
        return this.fields(s, ["relation", "inhRelations", "ofTypename"]);
      case "AlterTableStmt":
        rv("relation", "alter", relationKind(s.objtype, "table"));
        return this.fields(s, ["relation"]);
      case "IndexStmt":
        rv("relation", "alter", "table");
        return this.fields(s, ["relation"]);
      case "CreateEnumStmt":
        this.list(s.typeName, "create", "type");
        return this.fields(s, ["typeName"]);
      case "AlterEnumStmt":
        this.list(s.typeName, "alter", "type");
        return this.fields(s, ["typeName"]);
      case "CompositeTypeStmt":
        rv("typevar", "create", "type");
        return this.fields(s, ["typevar"]);
      case "CreateDomainStmt":
        this.list(s.domainname, "create", "domain");
        return this.fields(s, ["domainname"]);
      case "AlterDomainStmt":
        this.list(s.typeName, "alter", "domain");
        return this.fields(s, ["typeName"]);
      case "DropStmt": {
        const what = relationKind(s.removeType, "object");
        const tail = ON_TABLE.has(String(s.removeType)) ? 1 : 0;
        for (const object of Array.isArray(s.objects) ? s.objects : []) this.list(object, "alter", what, tail);
        return;
      }
      case "RenameStmt":
      case "CommentStmt": {
        const objtype = String(kind === "RenameStmt" ? s.renameType : s.objtype);
        const what = relationKind(objtype, "object");
        rv("relation", "alter", relationKind(s.relationType, what));
        if (s.object !== undefined) this.list(s.object, "alter", what, ON_TABLE.has(objtype) ? 1 : 0);
        return this.fields(s, ["relation", "object"]);
      }
      case "CreateSeqStmt":
        rv("sequence", "create", "sequence");
        return this.fields(s, ["sequence"]);
      case "AlterSeqStmt":
        rv("sequence", "alter", "sequence");
        return this.fields(s, ["sequence"]);
      case "ViewStmt":
        rv("view", "create", "view");
        return this.fields(s, ["view"]);
      case "CreateTableAsStmt":
        if (isObject(s.into) && isObject(s.into.rel)) this.rangeVar(s.into.rel, "create", relationKind(s.objtype, "table"));
        return this.walk(s.query);
      case "InsertStmt":
      case "UpdateStmt":
      case "DeleteStmt":
      case "MergeStmt":
        rv("relation", "write", "table");
        return this.fields(s, ["relation"]);
      case "SelectStmt":
        if (isObject(s.intoClause) && isObject(s.intoClause.rel)) this.rangeVar(s.intoClause.rel, "create", "table");
        return this.fields(s, ["intoClause"]);
      case "CreateFunctionStmt":
        this.list(s.funcname, "create", s.is_procedure ? "procedure" : "function");
        return this.fields(s, ["funcname"]);
      case "CreateTrigStmt": {
        rv("relation", "alter", "table");
        const fn = nameList(s.funcname);
        if (fn) this.names.add({ what: "function", role: "use", parts: fn }, undefined, fn.length - 1);
        return this.fields(s, ["relation", "funcname"]);
      }
      case "CreatePolicyStmt":
      case "AlterPolicyStmt":
        rv("table", "alter", "table");
        return this.fields(s, ["table"]);
      case "GrantStmt":
        for (const object of Array.isArray(s.objects) ? s.objects : []) {
          if (isObject(object) && isObject(object.RangeVar)) this.rangeVar(object.RangeVar, "alter", relationKind(s.objtype, "table"));
          else this.list(object, "alter", relationKind(s.objtype, "object"));
        }
        return;
      case "CreateStatsStmt":
        this.list(s.defnames, "create", "statistics object");
        return this.fields(s, ["defnames"]);
      default:
        return this.fields(s, []);
    }
  }
}

/** Why a tenant statement of this kind is refused as a whole, if it is. */
function refusedStatement(kind: string, s: Node): string | undefined {
  if (REFUSED_STATEMENTS[kind]) return REFUSED_STATEMENTS[kind];
  if (kind === "DropStmt" && s.removeType === "OBJECT_SCHEMA") return REFUSED_STATEMENTS.CreateSchemaStmt;
  if (!ALLOWED_STATEMENTS.has(kind)) return `${kind.replace(/Stmt$/, "")} statements are not allowed in tenant migrations`;
  if (kind === "IndexStmt" && s.concurrent) return "CREATE INDEX CONCURRENTLY cannot run inside the runner's transaction";
  if (kind === "GrantStmt" && s.objtype === "OBJECT_SCHEMA") {
    return "GRANT ... ON SCHEMA names a schema, not an object in it: the runner cannot bind it (tenant creation sets up each schema's grants)";
  }
  if (kind === "GrantStmt" && s.targtype !== undefined && s.targtype !== "ACL_TARGET_OBJECT") {
    return "GRANT ... ALL ... IN SCHEMA names a schema, not an object: grant on each object";
  }
  if (kind === "CreateFunctionStmt") {
    const hasStringBody = (Array.isArray(s.options) ? s.options : []).some(
      (o) => isObject(o) && isObject(o.DefElem) && o.DefElem.defname === "as",
    );
    if (hasStringBody) {
      return (
        "a function body written as a string ($$...$$) cannot be checked or bound to each tenant's schema; " +
        "write a SQL function with BEGIN ATOMIC ... END (or RETURN ...), whose body PostgreSQL parses"
      );
    }
  }
  if (kind === "VariableSetStmt") {
    const name = String(s.name ?? "").toLowerCase();
    if (!s.is_local || ["search_path", "role", "session_authorization"].includes(name)) {
      return "only SET LOCAL of a setting other than search_path or role is allowed (the runner owns the session)";
    }
  }
  return undefined;
}

/** Why one tenant-track reference is refused, if it is. */
function tenantRefProblem(ref: ObjectRef, cteNames: Set<string>): string | undefined {
  const { parts, what, role, qualified } = ref;
  const name = displayName(parts);
  if (qualified === 0) {
    if (what === "type" && parts.length === 1 && BUILTIN_TYPES.has(parts[0]!)) return undefined;
    if (what === "function" && parts.length === 1 && BUILTIN_FUNCTIONS.has(parts[0]!)) return undefined;
    if (role === "read" && parts.length === 1 && cteNames.has(parts[0]!)) return undefined;
    if (what === "operator" || what === "operator class" || what === "collation") return undefined;
    const only =
      what === "type"
        ? " (only PostgreSQL's built-in types may be unqualified)"
        : what === "function"
          ? " (only PostgreSQL's built-in functions may be unqualified)"
          : "";
    return (
      `${what} ${name} is not schema-qualified: write ${displayName([PLACEHOLDER_SCHEMA, ...parts])}${only}; ` +
      "an unqualified name lands in (or is looked up through) the search_path, e.g. public"
    );
  }
  if (qualified > 1) return `${what} ${name} names another database; tenant migrations name only "${PLACEHOLDER_SCHEMA}" objects`;
  const schema = parts[0]!;
  if (schema === PLACEHOLDER_SCHEMA) return undefined;
  if (schema === "public") {
    return (
      `${what} ${name} is in the public schema, which holds only the migration ledger; ` +
      `tenant objects are named ${displayName([PLACEHOLDER_SCHEMA, ...parts.slice(1)])}`
    );
  }
  if (schema.startsWith(TENANT_SCHEMA_PREFIX)) {
    return (
      `${what} ${name} names the real tenant schema ${quoteIdent(schema)}; tenant migrations name only the placeholder ` +
      `schema "${PLACEHOLDER_SCHEMA}", which the runner binds to each tenant's schema`
    );
  }
  if (schema === SHARED_SCHEMA) {
    if (role === "read" || role === "use") return undefined;
    if (role === "fk") {
      return `a foreign key to ${name} would add triggers to that shared table (a write to shared); tenant migrations only read shared objects`;
    }
    return (
      `${what} ${name} would be ${role === "create" ? "created" : "changed"} in the shared schema; ` +
      "tenant migrations only read shared objects: change shared objects in a shared migration"
    );
  }
  if (schema === "pg_catalog" && (role === "read" || role === "use")) return undefined;
  return `${what} ${name} is in schema ${quoteIdent(schema)}; tenant migrations name only "${PLACEHOLDER_SCHEMA}" objects (and read "${SHARED_SCHEMA}" ones)`;
}

/**
 * The ledger's bookkeeping: a shared migration may read the migration ledger and attach triggers to
 * it (shared.ledger_counts is kept that way, 0007_tenant_pool); nothing else of `public`.
 */
function isLedgerBookkeeping(ref: ObjectRef, kind: string): boolean {
  const { parts, role, qualified } = ref;
  if (qualified !== 1 || parts[0] !== "public" || parts[1] !== "schema_migrations") return false;
  return role === "read" || (role === "alter" && kind === "CreateTrigStmt");
}

/** Why one shared-track reference is refused, if it is. */
function sharedRefProblem(ref: ObjectRef, kind: string): string | undefined {
  if (isLedgerBookkeeping(ref, kind)) return undefined;
  const { parts, what, role, qualified } = ref;
  if (qualified === 0) {
    if (role === "create") {
      return `${what} ${displayName(parts)} is not schema-qualified and would land in public: write ${displayName([SHARED_SCHEMA, ...parts])}`;
    }
    return undefined;
  }
  const schema = parts[qualified - 1]!;
  if (schema === "public") return `${what} ${displayName(parts)} is in the public schema, which holds only the migration ledger`;
  if (schema === PLACEHOLDER_SCHEMA || schema.startsWith(TENANT_SCHEMA_PREFIX)) {
    return `${what} ${displayName(parts)} is a tenant object: tenant tables belong in the tenant track (migrations/tenant)`;
  }
  return undefined;
}

/** Parses a migration file; for the tenant track, checks every statement and finds the qualifiers to bind. */
export function parseMigration(text: string, track: Track): ParsedSql {
  const statements: ParsedStatement[] = [];
  const problems: Problem[] = [];
  const pieces: string[] = [];
  const statementPieces: string[][] = [];
  let sql = "";
  let pieceStart = 0;
  let offset = 0;
  for (const chunk of text.split(BREAKPOINT)) {
    const chunkOffset = offset;
    offset += chunk.length + BREAKPOINT.length;
    if (chunk.trim() === "") continue;
    const chunkLine = lineAt(text, chunkOffset) - 1;
    const index = byteIndexer(chunk);
    let tree: { stmts?: Array<{ stmt?: Node; stmt_location?: number; stmt_len?: number }> };
    try {
      tree = parseSync(chunk) as typeof tree;
    } catch (error) {
      const e = error as { message: string; sqlDetails?: { cursorPosition?: number } };
      const at = e.sqlDetails?.cursorPosition;
      const line = chunkLine + (at === undefined ? 1 : lineAt(chunk, index(at)));
      let before = 0;
      try {
        // The statement the error is in: count the `;` before it.
        if (at !== undefined) before = scanSync(chunk).tokens.filter((t) => t.text === ";" && t.start < at).length;
      } catch {
        // An unterminated literal or comment: the scanner fails too; report the chunk's first statement.
      }
      problems.push({ statement: statements.length + 1 + before, line, message: `PostgreSQL cannot parse it: ${e.message}` });
      continue;
    }
    const stmts = tree.stmts ?? [];
    if (stmts.length === 0) continue;
    const tokens = scanSync(chunk).tokens;
    const significant = tokens.filter((t) => !COMMENT_TOKENS.has(t.tokenName));
    const chunkStart = sql.length;
    sql += chunk;
    // A last statement without `;` (or ending in a comment) gets its `;` on a line of its own.
    if (significant.at(-1)?.text !== ";") sql += "\n;";
    sql += "\n";
    const byteLength = Buffer.byteLength(chunk);
    for (const { stmt, stmt_location = 0, stmt_len = 0 } of stmts) {
      const kind = Object.keys(stmt ?? {})[0] ?? "unknown";
      const node = (stmt?.[kind] ?? {}) as Node;
      const endByte = stmt_len ? stmt_location + stmt_len : byteLength;
      let first = tokens.findIndex((t) => t.start >= stmt_location && !COMMENT_TOKENS.has(t.tokenName));
      if (first < 0) first = tokens.length;
      let end = tokens.findIndex((t) => t.start >= endByte);
      if (end < 0) end = tokens.length;
      const startIndex = first < tokens.length ? index(tokens[first]!.start) : index(stmt_location);
      const number = statements.length + 1;
      const line = chunkLine + lineAt(chunk, startIndex);
      const names = new StatementNames(tokens, first, end);
      const walker = new Walker(names);
      walker.statement(kind, node);
      names.finish();
      const raw = chunk.slice(startIndex, index(endByte));
      const textStart = startIndex + (raw.length - raw.trimStart().length);
      const textEnd = startIndex + raw.trimEnd().length;
      statements.push({ number, line, kind, text: chunk.slice(textStart, textEnd), node, refs: names.refs });
      const own: string[] = [];
      let ownStart = textStart;
      if (track === "tenant") {
        for (const i of [...names.qualifiers].sort((a, b) => a - b)) {
          const token = tokens[i]!;
          own.push(chunk.slice(ownStart, index(token.start)));
          ownStart = index(token.end);
        }
      }
      own.push(chunk.slice(ownStart, Math.max(ownStart, textEnd)));
      statementPieces.push(own);
      const report = (message: string) => problems.push({ statement: number, line, message });
      if (track === "tenant") {
        const refused = refusedStatement(kind, node);
        if (refused) {
          report(refused);
          continue;
        }
        for (const message of names.problems) report(message);
        for (const ref of names.refs) {
          const problem = tenantRefProblem(ref, names.cteNames);
          if (problem) report(problem);
        }
        for (const i of [...names.qualifiers].sort((a, b) => a - b)) {
          const token = tokens[i]!;
          pieces.push(sql.slice(pieceStart, chunkStart + index(token.start)));
          pieceStart = chunkStart + index(token.end);
        }
      } else {
        for (const ref of names.refs) {
          const problem = sharedRefProblem(ref, kind);
          if (problem) report(problem);
        }
      }
    }
  }
  pieces.push(sql.slice(pieceStart));
  return { sql, pieces, statementPieces, statements, problems };
}

/** The SQL of a parsed tenant file bound to `schemaName`: the pieces joined by the quoted schema. */
export function bindPieces(pieces: string[], schemaName: string): string {
  return pieces.length === 1 ? pieces[0]! : pieces.join(quoteIdent(schemaName));
}

/** `migrations/<track>/<name>.sql, statement N (line L): message` */
export function describeProblem(file: string, problem: Problem): string {
  return `${file}, statement ${problem.statement} (line ${problem.line}): ${problem.message}`;
}
