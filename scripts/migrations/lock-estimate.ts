// How many lock-table entries a migration run takes, estimated from the parsed statements instead
// of running them. PostgreSQL's lock table holds one entry per (object, lock mode) a transaction
// holds (pg_locks shows them); a run over N tenants in one transaction holds every tenant's entries
// at once. The estimate follows what each statement locks, a little on the high side:
// - a new table: the table (3 modes), its TOAST table and index when a column may need one (3),
//   each index its constraints create (2), each serial or identity sequence (3);
// - ALTER TABLE: the table, plus a TOAST table for a new variable-width column; a column
//   changing type rewrites the table (a transient table and its types, new TOAST, every index);
//   a foreign key locks the referenced table and its indexes;
// - CREATE INDEX: the table (2) and the index; DROP: the object and its table;
// - CREATE TYPE / ALTER TYPE: the type (1);
// - INSERT/UPDATE/DELETE: the table and each of its indexes; every relation read: it and its indexes;
// - the schema itself, when something is created in it (1).
// Which indexes a table has comes from a model of the tables built from the migrations in order.
// Objects outside the tenant's schema (shared ones it reads) are counted once per transaction.
// A margin of 10% + 1 per tenant covers what the model does not see.
import { trackOf, type Migration } from "./files.ts";
import type { ParsedStatement } from "./sql.ts";

type Node = Record<string, unknown>;

interface TableModel {
  indexes: Set<string>;
  toast: boolean;
}

/** Types whose values never need TOAST: a table of only these has no TOAST table. */
const FIXED_WIDTH = new Set([
  "bool", "boolean", "int2", "int4", "int8", "smallint", "integer", "int", "bigint", "float4", "float8", "real",
  "serial", "serial4", "serial2", "serial8", "smallserial", "bigserial", "date", "time", "timestamp", "timestamptz",
  "uuid", "oid", "money", "char",
]);
const SERIAL = new Set(["serial", "serial4", "serial2", "serial8", "smallserial", "bigserial"]);

function isObject(value: unknown): value is Node {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function items(value: unknown): Node[] {
  return Array.isArray(value) ? value.filter(isObject) : [];
}

function typeNames(typeName: unknown): string[] {
  if (!isObject(typeName)) return [];
  return items(typeName.names).map((n) => String((n.String as Node | undefined)?.sval ?? ""));
}

function relName(rv: unknown): string | undefined {
  return isObject(rv) && typeof rv.relname === "string"
    ? `${typeof rv.schemaname === "string" ? `${rv.schemaname}.` : ""}${rv.relname}`
    : undefined;
}

/** Every lock entry a statement takes, as `object|mode` keys, and the changes it makes to the model. */
class LockCounter {
  readonly tenant = new Set<string>();
  readonly once = new Set<string>();
  private readonly tables: Map<string, TableModel>;
  private readonly record: boolean;
  private rewrites = 0;

  constructor(tables: Map<string, TableModel>, record: boolean) {
    this.tables = tables;
    this.record = record;
  }

  private lock(object: string, ...modes: string[]): void {
    if (!this.record) return;
    const target = object.startsWith("shared.") || object.startsWith("pg_catalog.") ? this.once : this.tenant;
    for (const mode of modes) target.add(`${object}|${mode}`);
  }

  private table(name: string): TableModel {
    let model = this.tables.get(name);
    if (!model) {
      // A table the migrations did not create (or a view): assume a few indexes and a TOAST table.
      model = { indexes: new Set(["?1", "?2", "?3"]), toast: true };
      this.tables.set(name, model);
    }
    return model;
  }

  private toast(name: string): void {
    this.lock(`${name}#toast`, "AccessExclusive", "Share");
    this.lock(`${name}#toast_index`, "AccessExclusive");
  }

  /** Reading a relation: it and each of its indexes (the planner opens them). */
  read(name: string): void {
    const model = this.table(name);
    this.lock(name, "AccessShare");
    for (const index of model.indexes) this.lock(`${name}#${index}`, "AccessShare");
  }

  private write(name: string): void {
    const model = this.table(name);
    this.lock(name, "RowExclusive", "AccessShare");
    for (const index of model.indexes) this.lock(`${name}#${index}`, "RowExclusive");
  }

  private sequence(name: string): void {
    this.lock(name, "AccessExclusive", "RowExclusive", "ShareRowExclusive");
  }

  private column(table: string, def: Node, model: TableModel): void {
    const type = typeNames(def.typeName).at(-1) ?? "";
    if (!FIXED_WIDTH.has(type) || (isObject(def.typeName) && def.typeName.arrayBounds)) {
      if (!model.toast) this.toast(table);
      model.toast = true;
    }
    if (SERIAL.has(type)) this.sequence(`${table}_${String(def.colname)}_seq`);
    for (const wrapped of items(def.constraints)) {
      const c = wrapped.Constraint as Node | undefined;
      if (!c) continue;
      if (c.contype === "CONSTR_IDENTITY") this.sequence(`${table}_${String(def.colname)}_seq`);
      this.constraint(table, c, model, `${String(def.colname)}_${String(c.contype)}`);
    }
  }

  private constraint(table: string, c: Node, model: TableModel, fallbackName: string): void {
    const name = typeof c.conname === "string" ? c.conname : fallbackName;
    if (c.contype === "CONSTR_PRIMARY" || c.contype === "CONSTR_UNIQUE" || c.contype === "CONSTR_EXCLUSION") {
      model.indexes.add(name);
      this.lock(`${table}#${name}`, "AccessExclusive", "AccessShare");
      this.lock(table, "Share", "AccessShare");
    } else if (c.contype === "CONSTR_FOREIGN") {
      this.lock(table, "ShareRowExclusive", "AccessShare");
      for (const index of model.indexes) this.lock(`${table}#${index}`, "AccessShare");
      const referenced = relName(c.pktable);
      if (referenced) {
        this.lock(referenced, "ShareRowExclusive", "RowShare");
        this.read(referenced);
      }
    }
  }

  statement(s: ParsedStatement): void {
    const n = s.node;
    switch (s.kind) {
      case "CreateStmt": {
        const name = relName(n.relation);
        if (!name) break;
        const model: TableModel = { indexes: new Set(), toast: false };
        this.tables.set(name, model);
        this.lock(name, "AccessExclusive", "AccessShare", "Share");
        for (const element of items(n.tableElts)) {
          if (isObject(element.ColumnDef)) this.column(name, element.ColumnDef, model);
          else if (isObject(element.Constraint)) this.constraint(name, element.Constraint, model, `c${model.indexes.size}`);
        }
        break;
      }
      case "AlterTableStmt": {
        const name = relName(n.relation);
        if (!name) break;
        const model = this.table(name);
        this.lock(name, "AccessExclusive");
        for (const wrapped of items(n.cmds)) {
          const cmd = wrapped.AlterTableCmd as Node | undefined;
          if (!cmd) continue;
          const def = isObject(cmd.def) ? cmd.def : undefined;
          if (cmd.subtype === "AT_AddColumn" && def && isObject(def.ColumnDef)) this.column(name, def.ColumnDef, model);
          else if (cmd.subtype === "AT_AddConstraint" && def && isObject(def.Constraint)) {
            this.constraint(name, def.Constraint, model, `c${model.indexes.size}`);
          } else if (cmd.subtype === "AT_AlterColumnType") {
            // A rewrite: a transient table (and its row types) replaces the table's storage, the
            // TOAST table and every index are rebuilt, constraints on the column are re-checked.
            const rewrite = `${name}#rewrite${this.rewrites++}`;
            for (const index of model.indexes) this.lock(`${name}#${index}`, "AccessExclusive", "AccessShare");
            this.lock(name, "Share");
            this.toast(rewrite);
            this.lock(`${rewrite}#toast_index`, "ShareUpdateExclusive");
            for (const part of ["table", "type", "array_type", "old_toast", "old_toast_index", "constraint", "catalog"]) {
              this.lock(`${rewrite}#${part}`, "AccessExclusive");
            }
          }
        }
        break;
      }
      case "IndexStmt": {
        const table = relName(n.relation);
        if (!table) break;
        const model = this.table(table);
        const index = typeof n.idxname === "string" ? n.idxname : `idx${model.indexes.size}`;
        model.indexes.add(index);
        this.lock(table, "Share", "AccessShare");
        this.lock(`${table}#${index}`, "AccessExclusive");
        break;
      }
      case "DropStmt":
        for (const ref of s.refs.filter((r) => r.role === "alter")) {
          const name = ref.parts.join(".");
          this.lock(name, "AccessExclusive");
          if (ref.what === "index") {
            for (const [table, model] of this.tables) {
              const short = ref.parts.at(-1)!;
              if (model.indexes.delete(short)) this.lock(table, "AccessExclusive");
            }
          } else if (ref.what === "table") this.tables.delete(name);
        }
        break;
      case "CreateEnumStmt":
      case "AlterEnumStmt":
      case "CreateDomainStmt":
      case "AlterDomainStmt":
      case "CompositeTypeStmt":
        for (const ref of s.refs.filter((r) => r.role === "create" || r.role === "alter")) {
          this.lock(`type:${ref.parts.join(".")}`, "Exclusive");
        }
        break;
      case "CreateSeqStmt":
      case "AlterSeqStmt":
        if (relName(n.sequence)) this.sequence(relName(n.sequence)!);
        break;
      default:
        // Anything else: two entries for each relation it changes or creates.
        for (const ref of s.refs) {
          if (ref.role === "create" || ref.role === "alter") this.lock(ref.parts.join("."), "AccessExclusive", "AccessShare");
        }
    }
    // Rows written and relations read (data migrations, views, defaults that query).
    for (const ref of s.refs) {
      if (ref.what === "column" || ref.what === "function" || ref.what === "type") continue;
      const name = ref.parts.slice(0, ref.qualified + 1).join(".");
      if (ref.role === "write") this.write(name);
      else if (ref.role === "read" && ref.what !== "operator" && ref.what !== "collation" && ref.what !== "operator class") this.read(name);
    }
  }
}

export interface LockEstimate {
  /** Entries each tenant adds (its own objects). */
  perTenant: number;
  /** Entries taken once per transaction: the shared track's objects and the shared objects tenants read. */
  once: number;
}

/**
 * On Citus the coordinator also locks Citus' metadata for each distributed table a statement
 * creates or changes. Measured on Citus 13 (test/lifecycle/lock-estimate.test.ts with TEST_CITUS=1),
 * the coordinator's lock entries against PostgreSQL's estimate: the whole tenant track 49 / 34,
 * a column type change 34 / 20, a new table with identity, foreign key and unique constraint
 * 47 / 22 (the largest ratio, 2.14). The estimate is scaled by this on Citus.
 */
export const CITUS_LOCK_FACTOR = 2.5;

/**
 * Estimates the lock-table entries of applying `pendingShared` once and `pendingTenant` to each
 * tenant. The tracks they were loaded with (applied migrations too) build the model of which
 * tables and indexes exist. `citus`: the coordinator of a Citus cluster (CITUS_LOCK_FACTOR).
 */
export function estimateLocks(pendingShared: Migration[], pendingTenant: Migration[], citus = false): LockEstimate {
  const estimate = estimatePostgresLocks(pendingShared, pendingTenant);
  if (!citus) return estimate;
  return { perTenant: Math.ceil(estimate.perTenant * CITUS_LOCK_FACTOR), once: Math.ceil(estimate.once * CITUS_LOCK_FACTOR) };
}

function estimatePostgresLocks(pendingShared: Migration[], pendingTenant: Migration[]): LockEstimate {
  const allShared = (pendingShared[0] && trackOf(pendingShared[0])) || pendingShared;
  const allTenant = (pendingTenant[0] && trackOf(pendingTenant[0])) || pendingTenant;
  const tables = new Map<string, TableModel>();
  const sharedCounter = new LockCounter(tables, false);
  const sharedPending = new Set(pendingShared.map((m) => m.name));
  let once = 0;
  for (const migration of allShared) {
    const counter = sharedPending.has(migration.name) ? new LockCounter(tables, true) : sharedCounter;
    for (const statement of migration.parsed) counter.statement(statement);
    once += counter === sharedCounter ? 0 : counter.tenant.size + counter.once.size;
  }
  const pending = new Set(pendingTenant.map((m) => m.name));
  const modelOnly = new LockCounter(tables, false);
  const counted = new LockCounter(tables, true);
  for (const migration of allTenant) {
    const counter = pending.has(migration.name) ? counted : modelOnly;
    for (const statement of migration.parsed) counter.statement(statement);
  }
  // The tenant's schema: one entry when a statement creates an object in it.
  const creates = pendingTenant.some((m) => m.parsed.some((s) => s.refs.some((r) => r.role === "create")));
  const entries = counted.tenant.size + (creates ? 1 : 0);
  // A margin for what the model does not see (catalog details that vary between versions).
  const perTenant = entries === 0 ? 0 : Math.ceil(entries * 1.1) + 1;
  return { perTenant, once: once + counted.once.size };
}
