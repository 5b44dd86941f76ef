// `tenants export` / `tenants import`: one tenant as one self-contained, versioned file.
//
// File format (version 1), text lines and framed COPY data:
//
//   edge-tenants-export 1\n
//   <header: one line of JSON>\n           tenant catalog rows, migrations, tables, sequences
//   table <name>\n                         for each table, in foreign-key order:
//   <length>\n<length bytes>               its rows in COPY text format, in chunks,
//   ...
//   done <row count>\n
//   end sha256:<hex>\n                     SHA-256 of every byte before this line
//
// Nothing in it depends on the database it came from (no ids, no schema name, no export time), and
// rows are written in primary-key order with fixed output settings (UTC, ISO dates), so exporting
// the same data twice, or again after an import elsewhere, gives the same bytes.
import { createHash, type Hash } from "node:crypto";
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import type pg from "pg";
import { quoteIdent, slugError } from "../../src/tenancy/naming.ts";
import { inTransaction } from "../db/connect.ts";
import { copyIn, copyOut } from "../db/copy.ts";
import type { AppRoleOptions } from "../db/roles.ts";
import { citusFor, sendQueries } from "../db/citus.ts";
import { migrationQueries, type MigrationSet } from "../migrations/files.ts";
import { behindHead, LEDGER_TABLE, ledgerExists, readFleetSummary, recordSql, verifyLedger } from "../migrations/ledger.ts";
import {
  checkHosts,
  claimReleasedHosts,
  createTenantSchema,
  hostOwners,
  lockedTransaction,
  registerTenantSql,
  showTenant,
  TenantCommandError,
  unusedSchemaName,
  type QuarantinedHost,
  type TenantInfo,
} from "./operations.ts";

export const EXPORT_FORMAT = 1;
const MAGIC = `edge-tenants-export ${EXPORT_FORMAT}`;
const CHUNK = 256 * 1024;
const MAX_LINE = 64 * 1024 * 1024;

/** Output settings of both directions: the text of every value is fixed. */
const SESSION_SETTINGS = [
  "SET LOCAL TimeZone = 'UTC'",
  "SET LOCAL DateStyle = 'ISO, YMD'",
  "SET LOCAL IntervalStyle = 'postgres'",
  "SET LOCAL extra_float_digits = 3",
  "SET LOCAL bytea_output = 'hex'",
  "SET LOCAL client_encoding = 'UTF8'",
].join("; ");

export interface ExportHeader {
  format: number;
  /** The tenant migrations applied to the schema, in order (the last one is where it is). */
  migrations: string[];
  tenant: {
    slug: string;
    name: string;
    status: "active" | "suspended";
    rateLimitTier: string;
    createdAt: string;
    hosts: Array<{ host: string; primary: boolean }>;
  };
  tables: Array<{ name: string; columns: string[] }>;
  sequences: Array<{ name: string; lastValue: string; isCalled: boolean }>;
}

export interface ExportResult {
  file: string;
  bytes: number;
  sha256: string;
  migration: string;
  tables: Array<{ name: string; rows: number }>;
}

interface TableInfo {
  name: string;
  columns: string[];
  primaryKey: string[];
  references: string[];
}

async function readTables(client: pg.ClientBase, schema: string): Promise<TableInfo[]> {
  const { rows } = await client.query<TableInfo>(
    `SELECT c.relname AS name,
            array(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                    AND a.attgenerated = '' ORDER BY a.attnum)::text[] AS columns,
            coalesce(array(SELECT a.attname FROM pg_constraint k CROSS JOIN unnest(k.conkey) WITH ORDINALITY AS u(attnum, ord)
                           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.attnum
                           WHERE k.conrelid = c.oid AND k.contype = 'p' ORDER BY u.ord)::text[], '{}') AS "primaryKey",
            coalesce(array(SELECT DISTINCT r.relname FROM pg_constraint k JOIN pg_class r ON r.oid = k.confrelid
                           WHERE k.conrelid = c.oid AND k.contype = 'f' AND r.relnamespace = c.relnamespace AND r.oid <> c.oid)::text[], '{}') AS "references"
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
     ORDER BY c.relname`,
    [schema],
  );
  // Referenced tables first, so the rows load with every foreign key checked.
  const ordered: TableInfo[] = [];
  const placed = new Set<string>();
  while (ordered.length < rows.length) {
    const next = rows.find((t) => !placed.has(t.name) && t.references.every((r) => placed.has(r)));
    if (!next) throw new TenantCommandError(`the tables of schema ${schema} reference each other in a cycle: export is not supported for them`);
    ordered.push(next);
    placed.add(next.name);
  }
  return ordered;
}

/**
 * Writes tenant `slug` to `file` (refusing an existing file): one REPEATABLE READ READ ONLY
 * transaction, so every table is read at the same instant. The file appears only when complete.
 */
export async function exportTenant(client: pg.Client, slug: string, file: string): Promise<ExportResult> {
  const problem = slugError(slug);
  if (problem) throw new TenantCommandError(problem);
  if (!(await ledgerExists(client))) throw new TenantCommandError("the database is not initialized: run `npm run tenants -- init` first");
  const partial = `${file}.partial`;
  let out: FileHandle;
  try {
    out = await open(partial, "wx");
  } catch (error) {
    throw new TenantCommandError(`cannot write ${partial}: ${(error as Error).message}`);
  }
  try {
    await open(file, "r").then(
      async (h) => {
        await h.close();
        throw new TenantCommandError(`${file} already exists: choose another --out, or remove it first`);
      },
      () => undefined,
    );
    const hash = createHash("sha256");
    let bytes = 0;
    const write = async (data: Buffer | string) => {
      const buffer = typeof data === "string" ? Buffer.from(data, "utf8") : data;
      hash.update(buffer);
      bytes += buffer.length;
      await out.write(buffer);
    };
    const result = await inTransaction(client, async () => {
      await client.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
      await client.query(SESSION_SETTINGS);
      const tenant = await showTenant(client, slug);
      if (!tenant) throw new TenantCommandError(`no tenant ${slug}: see \`npm run tenants -- list\``);
      const tables = await readTables(client, tenant.schema);
      if (tables.length) {
        await client.query(`LOCK TABLE ${tables.map((t) => `${quoteIdent(tenant.schema)}.${quoteIdent(t.name)}`).join(", ")} IN ACCESS SHARE MODE`);
      }
      const { rows: applied } = await client.query<{ migration: string }>(
        `SELECT migration FROM ${LEDGER_TABLE} WHERE schema_name = $1 AND track = 'tenant' ORDER BY migration`,
        [tenant.schema],
      );
      const sequences: ExportHeader["sequences"] = [];
      const { rows: seqs } = await client.query<{ name: string }>(
        "SELECT sequencename AS name FROM pg_sequences WHERE schemaname = $1 ORDER BY sequencename",
        [tenant.schema],
      );
      for (const { name } of seqs) {
        const { rows } = await client.query<{ lastValue: string; isCalled: boolean }>(
          `SELECT last_value::text AS "lastValue", is_called AS "isCalled" FROM ${quoteIdent(tenant.schema)}.${quoteIdent(name)}`,
        );
        sequences.push({ name, ...rows[0]! });
      }
      const header: ExportHeader = {
        format: EXPORT_FORMAT,
        migrations: applied.map((r) => r.migration),
        tenant: {
          slug: tenant.slug,
          name: tenant.name,
          status: tenant.deleted ? ((await statusBeforeDelete(client, tenant.id)) ?? tenant.status) : tenant.status,
          rateLimitTier: tenant.rateLimitTier,
          createdAt: tenant.createdAt,
          hosts: tenant.hosts,
        },
        tables: tables.map((t) => ({ name: t.name, columns: t.columns })),
        sequences,
      };
      await write(`${MAGIC}\n${JSON.stringify(header)}\n`);
      const counts: ExportResult["tables"] = [];
      for (const table of tables) {
        await write(`table ${table.name}\n`);
        const columns = table.columns.map(quoteIdent).join(", ");
        const order = table.primaryKey.length ? ` ORDER BY ${table.primaryKey.map(quoteIdent).join(", ")}` : "";
        const stream = copyOut(client, `COPY (SELECT ${columns} FROM ${quoteIdent(tenant.schema)}.${quoteIdent(table.name)}${order}) TO STDOUT`);
        // Frames of exactly CHUNK bytes (the last one shorter), whatever sizes the reads return, so
        // the same rows always give the same bytes.
        let pending: Buffer[] = [];
        let size = 0;
        const frame = async (data: Buffer) => {
          await write(`${data.length}\n`);
          await write(data);
        };
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          pending.push(chunk);
          size += chunk.length;
          if (size < CHUNK) continue;
          let all = Buffer.concat(pending, size);
          while (all.length >= CHUNK) {
            await frame(all.subarray(0, CHUNK));
            all = all.subarray(CHUNK);
          }
          pending = [all];
          size = all.length;
        }
        if (size) await frame(Buffer.concat(pending, size));
        await write(`done ${stream.rowCount}\n`);
        counts.push({ name: table.name, rows: stream.rowCount });
      }
      return { migration: header.migrations.at(-1) ?? "", tables: counts };
    });
    const sha256 = hash.digest("hex");
    const trailer = `end sha256:${sha256}\n`;
    await out.write(trailer);
    bytes += trailer.length;
    await out.sync();
    await out.close();
    await rename(partial, file);
    return { file, bytes, sha256, ...result };
  } catch (error) {
    await out.close().catch(() => {});
    await rm(partial, { force: true });
    throw error;
  }
}

async function statusBeforeDelete(client: pg.ClientBase, tenantId: number): Promise<"active" | "suspended" | undefined> {
  const { rows } = await client.query<{ status: "active" | "suspended" }>(
    "SELECT status_before::text AS status FROM shared.deleted_tenants WHERE tenant_id = $1",
    [tenantId],
  );
  return rows[0]?.status;
}

/** A file that is not a valid export (corrupted, truncated, another format): nothing was imported. */
export class ExportFileError extends TenantCommandError {}

/** Reads an export file forward, hashing what it reads. */
class ExportReader {
  private buffer = Buffer.alloc(0);
  private offset = 0;
  private eof = false;
  readonly hash: Hash = createHash("sha256");
  private readonly handle: FileHandle;
  private readonly name: string;
  constructor(handle: FileHandle, name: string) {
    this.handle = handle;
    this.name = name;
  }

  private async fill(): Promise<boolean> {
    if (this.eof) return false;
    const chunk = Buffer.allocUnsafe(1 << 20);
    const { bytesRead } = await this.handle.read(chunk, 0, chunk.length, null);
    if (!bytesRead) {
      this.eof = true;
      return false;
    }
    this.buffer = Buffer.concat([this.buffer.subarray(this.offset), chunk.subarray(0, bytesRead)]);
    this.offset = 0;
    return true;
  }

  truncated(): ExportFileError {
    return new ExportFileError(`${this.name} ends too early: the file is truncated or corrupted; nothing was imported`);
  }

  /** Where the next line's newline is. */
  private async lineEnd(): Promise<number> {
    for (;;) {
      const end = this.buffer.indexOf(0x0a, this.offset);
      if (end >= 0) return end;
      if (this.buffer.length - this.offset > MAX_LINE) throw new ExportFileError(`${this.name} has a line longer than 64 MiB: it is not an export file (or it is corrupted)`);
      if (!(await this.fill())) throw this.truncated();
    }
  }

  /** The next line without its newline; `hashed` false leaves it out of the checksum (the trailer). */
  async readLine(hashed = true): Promise<string> {
    const end = await this.lineEnd();
    const line = this.buffer.toString("utf8", this.offset, end);
    if (hashed) this.hash.update(this.buffer.subarray(this.offset, end + 1));
    this.offset = end + 1;
    return line;
  }

  async readExact(length: number): Promise<Buffer> {
    while (this.buffer.length - this.offset < length) if (!(await this.fill())) throw this.truncated();
    const data = this.buffer.subarray(this.offset, this.offset + length);
    this.hash.update(data);
    this.offset += length;
    return Buffer.from(data);
  }

  async atEnd(): Promise<boolean> {
    return this.buffer.length === this.offset && !(await this.fill());
  }
}

async function readHeader(reader: ExportReader, name: string): Promise<ExportHeader> {
  const magic = await reader.readLine().catch(() => "");
  if (!magic.startsWith("edge-tenants-export ")) throw new ExportFileError(`${name} is not a tenant export file (it does not start with "edge-tenants-export")`);
  if (magic !== MAGIC) {
    throw new ExportFileError(`${name} is in export format "${magic.slice(20)}", which this checkout cannot read (it reads format ${EXPORT_FORMAT}): import it with the checkout that wrote it`);
  }
  let header: ExportHeader;
  try {
    header = JSON.parse(await reader.readLine()) as ExportHeader;
  } catch (error) {
    if (error instanceof ExportFileError) throw error;
    throw new ExportFileError(`${name} has an unreadable header: the file is corrupted; nothing was imported`);
  }
  if (
    header?.format !== EXPORT_FORMAT ||
    !Array.isArray(header.migrations) ||
    !Array.isArray(header.tables) ||
    !Array.isArray(header.sequences) ||
    typeof header.tenant?.name !== "string"
  ) {
    throw new ExportFileError(`${name} has an incomplete header: the file is corrupted; nothing was imported`);
  }
  return header;
}

/** The file's migrations must be the first ones of this checkout's tenant track, in order. */
function checkMigrations(header: ExportHeader, migrations: MigrationSet, name: string): void {
  const head = migrations.tenant.map((m) => m.name);
  const unknown = header.migrations.find((m) => !head.includes(m));
  if (unknown) {
    throw new TenantCommandError(
      `${name} is at tenant migration ${header.migrations.at(-1)}, newer than this checkout's head ${head.at(-1) ?? "(none)"} ` +
        `(${unknown} is not in migrations/tenant): import it with a checkout that has that migration`,
    );
  }
  if (header.migrations.some((m, i) => head[i] !== m)) {
    throw new TenantCommandError(`${name} has tenant migrations ${header.migrations.join(", ")}, not the first ones of this checkout's (${head.join(", ")}): it cannot be imported here`);
  }
}

export interface ImportInput {
  file: string;
  slug: string;
  hosts: string[];
  force?: boolean;
  onForced?: (hosts: QuarantinedHost[]) => void;
}

export interface ImportResult {
  tenant: TenantInfo;
  /** The migration the file was at, and those applied after the load to reach head. */
  fromMigration: string;
  migrated: string[];
  tables: Array<{ name: string; rows: number }>;
  bytes: number;
}

/**
 * Creates tenant `slug` from an export file, in one transaction under the migration lock: catalog
 * rows, a new schema at the file's migration, the data, its sequences, then the remaining
 * migrations to head. The checksum is checked before COMMIT: a corrupted file changes nothing.
 */
export async function importTenant(client: pg.Client, migrations: MigrationSet, input: ImportInput, roles: AppRoleOptions = {}): Promise<ImportResult> {
  const problem = slugError(input.slug);
  if (problem) throw new TenantCommandError(problem);
  if (!input.hosts.length) throw new TenantCommandError(`an imported tenant needs at least one host: --host ${input.slug}.example.com`);
  const hosts = checkHosts(input.hosts);
  let handle: FileHandle;
  try {
    handle = await open(input.file, "r");
  } catch (error) {
    throw new TenantCommandError(`cannot read ${input.file}: ${(error as Error).message}`);
  }
  try {
    const reader = new ExportReader(handle, input.file);
    const header = await readHeader(reader, input.file);
    checkMigrations(header, migrations, input.file);
    if (!(await ledgerExists(client))) throw new TenantCommandError("the database is not initialized: run `npm run tenants -- init` first");
    const atFile = migrations.tenant.slice(0, header.migrations.length);
    const afterFile = migrations.tenant.slice(header.migrations.length);
    let tables: ImportResult["tables"] = [];
    await lockedTransaction(client, async () => {
      const summary = await readFleetSummary(client);
      verifyLedger(summary, migrations);
      const behind = behindHead(summary, migrations);
      if (behind.shared.length || behind.tenant.length) {
        throw new TenantCommandError("the database is not at head: run `npm run migrate` first, then import");
      }
      const taken = await client.query("SELECT 1 FROM shared.tenants WHERE slug = $1", [input.slug]);
      if (taken.rowCount) throw new TenantCommandError(`tenant ${input.slug} already exists: import under another --slug`);
      const owners = await hostOwners(client, hosts);
      if (owners.length) throw new TenantCommandError(owners.map((o) => `host ${o.host} already belongs to tenant ${o.slug}`).join("; "));
      const forced = await claimReleasedHosts(client, hosts, null, input.force ?? false);
      if (forced.length) input.onForced?.(forced);

      const schema = await unusedSchemaName(client);
      // A distributed schema on Citus, as for any tenant.
      await createTenantSchema(client, schema, atFile, roles, [registerTenantSql(client, { slug: input.slug, name: header.tenant.name, schema, hosts })]);
      await client.query(
        `UPDATE shared.tenants SET status = $2, rate_limit_tier = $3, created_at = $4 WHERE slug = $1`,
        [input.slug, header.tenant.status, header.tenant.rateLimitTier, header.tenant.createdAt],
      );

      await client.query(SESSION_SETTINGS);
      tables = await loadTables(client, reader, header, schema, input.file);
      for (const s of header.sequences) {
        await client.query("SELECT setval($1::regclass, $2::bigint, $3)", [`${quoteIdent(schema)}.${quoteIdent(s.name)}`, s.lastValue, s.isCalled]);
      }
      const digest = reader.hash.digest("hex");
      const trailer = await reader.readLine(false);
      if (trailer !== `end sha256:${digest}`) {
        throw new ExportFileError(
          trailer.startsWith("end sha256:")
            ? `${input.file} does not match its checksum: the file is corrupted; nothing was imported`
            : `${input.file} has no checksum line where it should end: the file is truncated or corrupted; nothing was imported`,
        );
      }
      if (!(await reader.atEnd())) throw new ExportFileError(`${input.file} has bytes after its checksum line: the file is corrupted; nothing was imported`);

      if (afterFile.length) {
        const citus = await citusFor(client);
        await sendQueries(client, [...afterFile.flatMap((m) => migrationQueries(m, schema, citus)), recordSql(client, afterFile.map((migration) => ({ schema, migration })))], citus);
      }
    });
    const tenant = (await showTenant(client, input.slug))!;
    return {
      tenant,
      fromMigration: header.migrations.at(-1) ?? "",
      migrated: afterFile.map((m) => m.name),
      tables,
      bytes: (await handle.stat()).size,
    };
  } finally {
    await handle.close();
  }
}

async function loadTables(client: pg.Client, reader: ExportReader, header: ExportHeader, schema: string, name: string): Promise<ImportResult["tables"]> {
  const counts: ImportResult["tables"] = [];
  for (const table of header.tables) {
    const line = await reader.readLine();
    if (line !== `table ${table.name}`) throw new ExportFileError(`${name} has "${line.slice(0, 60)}" where table ${table.name} should start: the file is corrupted; nothing was imported`);
    let expected = -1;
    async function* chunks(): AsyncGenerator<Buffer> {
      for (;;) {
        const frame = await reader.readLine();
        const done = /^done (\d+)$/.exec(frame);
        if (done) {
          expected = Number(done[1]);
          return;
        }
        if (!/^[1-9]\d{0,9}$/.test(frame)) throw new ExportFileError(`${name} has a broken data frame in table ${table.name}: the file is corrupted; nothing was imported`);
        yield await reader.readExact(Number(frame));
      }
    }
    const columns = table.columns.map(quoteIdent).join(", ");
    let rows: number;
    try {
      rows = await copyIn(client, `COPY ${quoteIdent(schema)}.${quoteIdent(table.name)} (${columns}) FROM STDIN`, chunks());
    } catch (error) {
      if (error instanceof TenantCommandError) throw error;
      throw new ExportFileError(
        `${name}: table ${table.name} did not load (${(error as Error).message}); the file is corrupted or does not match its migration; nothing was imported`,
      );
    }
    if (rows !== expected) throw new ExportFileError(`${name}: table ${table.name} loaded ${rows} rows, the file says ${expected}: the file is corrupted; nothing was imported`);
    counts.push({ name: table.name, rows });
  }
  return counts;
}
