/**
 * PGlite as drizzle drives it, without two per-query costs:
 * - drizzle's parser options. Drizzle passes the same `parsers` (timestamps, dates and intervals, and their arrays,
 *   kept as text) with every query, and PGlite merges them into its ~300 default parsers each time: measured here,
 *   that doubled the cost of a one-row update (0.13 → 0.25 ms). This client installs those parsers once, at
 *   construction, and drops them from each query's options, so every query parses exactly as before.
 * - six protocol round trips a query. PGlite's `query` sends Parse, Describe (statement), Bind, Describe (portal),
 *   Execute and Sync one at a time, each through the WebAssembly module and back, and PostgreSQL parses and plans the
 *   text every time. Here a query's text is parsed once into a named prepared statement (with its parameter types,
 *   which choose each value's serializer as PGlite does), and each run sends Bind, Describe, Execute and Sync as one
 *   buffer: one round trip, no parse, and PostgreSQL's plan cache (a one-row update: 0.17 → 0.08 ms). Queries in a
 *   transaction, and those with options this path does not mirror (blobs, parameter types), go PGlite's own way.
 */
import {
  PGlite,
  type PGliteOptions,
  protocol,
  parse as protocolResults,
  type QueryOptions,
  type Results,
  type Transaction,
  types,
} from '@electric-sql/pglite';

const asText = (value: string) => value;

/** The parsers drizzle-orm's PGlite session passes with every query (drizzle-orm/pglite/session.js). */
export const DRIZZLE_PARSERS: NonNullable<QueryOptions['parsers']> = {
  [types.TIMESTAMP]: asText,
  [types.TIMESTAMPTZ]: asText,
  [types.INTERVAL]: asText,
  [types.DATE]: asText,
  1231: asText, // numeric[]
  1115: asText, // timestamp[]
  1185: asText, // timestamptz[]
  1187: asText, // interval[]
  1182: asText, // date[]
};

/** Prepared statements kept; the least recently used beyond this are closed (drizzle's `inArray` makes many texts). */
const MAX_STATEMENTS = 256;
/** PostgreSQL's codes for a prepared statement gone or no longer matching its tables: parse it again, once. */
const STALE_STATEMENT = new Set(['26000', '0A000']);

interface PreparedStatement {
  readonly name: string;
  /** Type oids of its parameters, as PostgreSQL inferred them. */
  readonly paramTypes: readonly number[];
}

export class DrizzlePGlite extends PGlite {
  /** Queries, statements and transactions begun and not yet settled (a simulation's clock waits for them). */
  operationsInFlight = 0;
  /** Prepared statements by query text, least recently used first. */
  private readonly statements = new Map<string, PreparedStatement>();
  private statementsMade = 0;
  /** Statements dropped from `statements` and still to close (with the next parse). */
  private readonly toClose: string[] = [];

  constructor(dataDir?: string, options: PGliteOptions = {}) {
    // PGlite reads its options from the first argument unless that is a directory name.
    super({
      ...options,
      ...(dataDir === undefined ? {} : { dataDir }),
      parsers: { ...DRIZZLE_PARSERS, ...options.parsers },
    });
    // Starting up, PGlite installs a parser for every array type it finds, over the ones given; drizzle's win
    // again before the first query runs (queries wait for `waitReady`, which runs this first).
    this.waitReady.then(
      () => Object.assign(this.parsers, DRIZZLE_PARSERS, options.parsers),
      () => undefined,
    );
  }

  override query<T>(query: string, params?: unknown[], options?: QueryOptions): Promise<Results<T>> {
    const own = withoutDrizzleParsers(options);
    if (own?.blob !== undefined || own?.paramTypes !== undefined || query.includes('/dev/blob'))
      return this.counted(super.query<T>(query, params, own));
    return this.counted(this.prepared<T>(query, params ?? [], own));
  }

  /** A query through its prepared statement, in one round trip (see the header). */
  private async prepared<T>(
    query: string,
    params: unknown[],
    options: QueryOptions | undefined,
  ): Promise<Results<T>> {
    await this._checkReady();
    return this._runExclusiveTransaction(() =>
      this._runExclusiveQuery(async () => {
        let messages: Awaited<ReturnType<PGlite['execProtocol']>>['messages'];
        try {
          messages = await this.runPrepared(query, params, options);
        } catch (error) {
          if (!STALE_STATEMENT.has((error as { code?: string }).code ?? ''))
            throw withQuery(error, query, params, options);
          this.forget(query);
          messages = await this.runPrepared(query, params, options).catch((again: unknown) => {
            throw withQuery(again, query, params, options);
          });
        }
        await this.syncToFs();
        return protocolResults.parseResults(messages, this.parsers, options)[0] as Results<T>;
      }),
    );
  }

  private async runPrepared(query: string, params: unknown[], options: QueryOptions | undefined) {
    const { serialize } = protocol;
    const statement = await this.statement(query);
    const values = params.map((value, i) => {
      if (value === null || value === undefined) return null;
      const type = statement.paramTypes[i] as number;
      const serializer = options?.serializers?.[type] ?? this.serializers[type];
      return serializer ? serializer(value) : String(value);
    });
    const run = concat([
      serialize.bind({ statement: statement.name, values }),
      serialize.describe({ type: 'P' }),
      serialize.execute({}),
      serialize.sync(),
    ]);
    const { onNotice } = options ?? {};
    return (await this.execProtocol(run, { syncToFs: false, ...(onNotice ? { onNotice } : {}) })).messages;
  }

  private forget(query: string): void {
    const statement = this.statements.get(query);
    if (!statement) return;
    this.statements.delete(query);
    this.toClose.push(statement.name);
  }

  /** The statement prepared for `query`: kept, or parsed now (closing the least recently used beyond the cap). */
  private async statement(query: string): Promise<PreparedStatement> {
    const kept = this.statements.get(query);
    if (kept) {
      this.statements.delete(query);
      this.statements.set(query, kept);
      return kept;
    }
    const { serialize } = protocol;
    if (this.statements.size >= MAX_STATEMENTS) this.forget(this.statements.keys().next().value as string);
    const parts = this.toClose.splice(0).map((name) => serialize.close({ type: 'S', name }));
    const name = `drizzle_pglite_${this.statementsMade++}`;
    parts.push(
      serialize.parse({ name, text: query }),
      serialize.describe({ type: 'S', name }),
      serialize.sync(),
    );
    const { messages } = await this.execProtocol(concat(parts), { syncToFs: false });
    const statement = { name, paramTypes: protocolResults.parseDescribeStatementResults(messages) };
    this.statements.set(query, statement);
    return statement;
  }

  override exec(query: string, options?: QueryOptions): Promise<Results[]> {
    return this.counted(super.exec(query, options));
  }

  override transaction<T>(callback: (tx: Transaction) => Promise<T>): Promise<T> {
    return this.counted(super.transaction(callback));
  }

  private counted<T>(operation: Promise<T>): Promise<T> {
    this.operationsInFlight++;
    const settled = () => {
      this.operationsInFlight--;
    };
    operation.then(settled, settled);
    return operation;
  }
}

/** Protocol messages as one buffer, which PGlite runs in one call. */
function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A database error with its query attached, as PGlite's own path attaches it. */
function withQuery(
  error: unknown,
  query: string,
  params: unknown[],
  options: QueryOptions | undefined,
): unknown {
  if (error instanceof Error) Object.assign(error, { query, params, queryOptions: options });
  return error;
}

/** The options without `parsers` when they are drizzle's (installed on the client already); otherwise as given. */
function withoutDrizzleParsers(options: QueryOptions | undefined): QueryOptions | undefined {
  const parsers = options?.parsers;
  if (!options || !parsers) return options;
  // Drizzle's prepared statements pass the same options object at every run: its answer is kept.
  const kept = strippedOptions.get(options);
  if (kept) return kept;
  let stripped: QueryOptions = options;
  if (Object.keys(parsers).every((key) => key in DRIZZLE_PARSERS)) {
    const { parsers: _installed, ...rest } = options;
    stripped = rest;
  }
  strippedOptions.set(options, stripped);
  return stripped;
}

const strippedOptions = new WeakMap<QueryOptions, QueryOptions>();
