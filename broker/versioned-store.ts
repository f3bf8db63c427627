/**
 * A document an operator changes over time (the policy, the price book): every change is a new version with who,
 * when and what changed against the one before; version 0 is the defaults and is never stored. One store serves
 * every such document; each names its table, the field its versions carry it in, and its validator.
 */
import { desc } from 'drizzle-orm';
import type { Clock } from '../lib/clock.ts';
import type { Database } from './db/open-database.ts';
import type { policies, priceBooks } from './db/schema.ts';
import { type JsonChange, jsonDiff } from './json-diff.ts';

/** What every version carries besides its document. */
export interface VersionMeta {
  readonly version: number;
  readonly createdAt: number;
  readonly createdBy: string;
  readonly diff: readonly JsonChange[];
}

/** A version whose document is in field `K` (`policy`, `book`). */
export type Version<K extends string, T> = VersionMeta & { readonly [P in K]: T };

/** The tables that hold versions: `version`, the document column, `created_at`, `created_by`, `diff`. */
type VersionTable = typeof policies | typeof priceBooks;
/** A row of such a table as drizzle reads it. */
type StoredRow = {
  readonly version: number;
  readonly createdAt: number;
  readonly createdBy: string;
  readonly diff: unknown;
} & Record<string, unknown>;

export interface VersionedStoreOptions<K extends string, T> {
  readonly table: VersionTable;
  /** The document's column, and the field of a version that carries it. */
  readonly field: K;
  /** Validates a document (ValidationError naming the field otherwise); `parse({})` is version 0. */
  readonly parse: (input: unknown) => T;
}

export class VersionedStore<K extends string, T> {
  private cached: Version<K, T> | undefined;

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly o: VersionedStoreOptions<K, T>,
  ) {}

  /** The version in force (cached until `set` or `forget`). */
  async current(): Promise<Version<K, T>> {
    if (this.cached) return this.cached;
    const [row] = await this.db.select().from(this.o.table).orderBy(desc(this.o.table.version)).limit(1);
    this.cached = row ? this.toVersion(row) : this.defaults();
    return this.cached;
  }

  /** The version in force at `atMs` (version 0 before any was set). */
  async at(atMs: number): Promise<Version<K, T>> {
    const rows = await this.db.select().from(this.o.table).orderBy(desc(this.o.table.version));
    const row = rows.find((r) => r.createdAt <= atMs);
    return row ? this.toVersion(row) : this.defaults();
  }

  /** Drops the cached version: another replica may have stored newer ones (a new leader calls this). */
  forget(): void {
    this.cached = undefined;
  }

  /** Validates and stores a new version (ValidationError naming the field otherwise; nothing is written). */
  async set(input: unknown, actor: string): Promise<Version<K, T>> {
    const document = this.o.parse(input);
    return this.db.transaction(async (tx) => {
      const [latest] = await tx.select().from(this.o.table).orderBy(desc(this.o.table.version)).limit(1);
      const previous = latest ? this.documentOf(latest) : this.o.parse({});
      const row = {
        version: (latest?.version ?? 0) + 1,
        [this.o.field]: document,
        createdAt: this.clock.now(),
        createdBy: actor,
        diff: jsonDiff(previous, document),
      };
      // The row has the table's columns; TypeScript cannot see that through the union of tables.
      await tx.insert(this.o.table).values(row as never);
      this.cached = this.toVersion(row);
      return this.cached;
    });
  }

  /** Every version, newest first. */
  async history(): Promise<Version<K, T>[]> {
    const rows = await this.db.select().from(this.o.table).orderBy(desc(this.o.table.version));
    return rows.map((row) => this.toVersion(row));
  }

  private documentOf(row: Record<string, unknown>): T {
    return this.o.parse(row[this.o.field]);
  }

  private toVersion(row: StoredRow): Version<K, T> {
    return {
      version: row.version,
      createdAt: row.createdAt,
      createdBy: row.createdBy,
      diff: row.diff as JsonChange[],
      [this.o.field]: this.documentOf(row),
    } as Version<K, T>;
  }

  private defaults(): Version<K, T> {
    return {
      version: 0,
      createdAt: 0,
      createdBy: 'defaults',
      diff: [],
      [this.o.field]: this.o.parse({}),
    } as Version<K, T>;
  }
}
