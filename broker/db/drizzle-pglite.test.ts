/**
 * DrizzlePGlite must answer every query exactly as a plain PGlite under drizzle does (timestamps, dates, intervals
 * and their arrays as text), in both of drizzle's row modes, and keep a data directory it is given. Both start from
 * the migrated template (pglite-template.ts) rather than each running initdb.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import { integer, pgTable, text } from 'drizzle-orm/pg-core';
import { drizzle } from 'drizzle-orm/pglite';
import { beforeAll, describe, expect, it } from 'vitest';
import { DrizzlePGlite } from './drizzle-pglite.ts';
import { migratedTemplate } from './pglite-template.ts';

let template: Blob | undefined;
beforeAll(async () => {
  template = await migratedTemplate(fileURLToPath(new URL('./migrations/', import.meta.url)));
});
/** PGlite's options to start from the template (when there is one). */
const fromTemplate = () => (template ? { loadDataDir: template } : {});

const everyParsedType = sql`select '2026-01-02 03:04:05'::timestamp as ts, '2026-01-02 03:04:05+00'::timestamptz as tz,
  '2024-01-01'::date as d, '1 day 2 hours'::interval as i, array[1.5, 2]::numeric[] as n,
  array['2026-01-02 03:04:05'::timestamp] as tsa, array['2026-01-02 03:04:05+00'::timestamptz] as tza,
  array['1 day'::interval] as ia, array['2026-01-02'::date] as da, 5::bigint as b, 1.25::numeric as nu,
  '{"a":1}'::jsonb as j, array[1, 2]::integer[] as ints, true as yes`;

const things = pgTable('things', { id: text('id').primaryKey(), n: integer('n').notNull() });

async function answers(client: PGlite) {
  const db = drizzle({ client });
  await db.execute(sql`create table things (id text primary key, n integer not null)`);
  await db.insert(things).values([
    { id: 'a', n: 1 },
    { id: 'b', n: 2 },
  ]);
  const raw = (await db.execute(everyParsedType)).rows;
  const typed = await db
    .select({ id: things.id, n: things.n, at: sql<string>`'2026-01-02'::date` })
    .from(things);
  await client.close();
  return { raw, typed };
}

describe('DrizzlePGlite', () => {
  it('parses every query as PGlite does under drizzle, in object and array row modes', async () => {
    const expected = await answers(new PGlite(fromTemplate()));
    const actual = await answers(new DrizzlePGlite(undefined, fromTemplate()));
    expect(actual).toEqual(expected);
    expect(expected.raw[0]).toMatchObject({ ts: '2026-01-02 03:04:05', n: '{1.5,2}', ints: [1, 2] });
  });

  it('answers parameters of every kind as PGlite does, through statements prepared once', async () => {
    const ask = async (client: PGlite) => {
      await client.exec(
        'create table vals (id int primary key, j jsonb, ints int[], yes boolean, big bigint, t text)',
      );
      const insert = 'insert into vals values ($1, $2, $3, $4, $5, $6) returning *';
      const rows = [];
      for (const [i, j, ints, yes, big, t] of [
        [1, { a: [1, 'x'] }, [1, 2], true, 9_007_199_254_740_991, 'one'],
        [2, null, null, null, null, null],
        [3, '"text"', [], false, -5, "it's"],
      ] as const)
        rows.push((await client.query(insert, [i, j, ints, yes, big, t])).rows[0]);
      const arrays = await client.query('select * from vals where id = any($1) order by id', [[1, 3]], {
        rowMode: 'array',
      });
      await client.close();
      return { rows, arrays: arrays.rows, fields: arrays.fields };
    };
    expect(await ask(new DrizzlePGlite(undefined, fromTemplate()))).toEqual(
      await ask(new PGlite(fromTemplate())),
    );
  });

  it('fails a bad query with PostgreSQL error and the query attached, and goes on', async () => {
    const client = new DrizzlePGlite(undefined, fromTemplate());
    await client.exec('create table once (id int primary key)');
    await client.query('insert into once values ($1)', [1]);
    const failure = await client.query('insert into once values ($1)', [1]).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: '23505', query: 'insert into once values ($1)', params: [1] });
    await expect(client.query('select nonsense from')).rejects.toMatchObject({ code: '42601' });
    expect((await client.query('select count(*)::int as n from once')).rows).toEqual([{ n: 1 }]);
    await client.close();
  });

  it('parses a statement again when its table changed, and keeps a bounded number prepared', async () => {
    const client = new DrizzlePGlite(undefined, fromTemplate());
    await client.exec('create table grows (a int); insert into grows values (1)');
    expect((await client.query('select * from grows')).rows).toEqual([{ a: 1 }]);
    await client.exec('alter table grows add column b int default 2');
    expect((await client.query('select * from grows')).rows).toEqual([{ a: 1, b: 2 }]);
    for (let k = 0; k < 300; k++)
      expect((await client.query<{ v: number }>(`select $1::int + ${k} as v`, [1])).rows[0]?.v).toBe(k + 1);
    expect((await client.query<{ v: number }>('select $1::int + 0 as v', [5])).rows[0]?.v).toBe(5);
    const kept = await client.query<{ n: number }>('select count(*)::int as n from pg_prepared_statements');
    expect(kept.rows[0]?.n).toBeLessThanOrEqual(256);
    expect(kept.rows[0]?.n).toBeGreaterThan(200);
    await client.close();
  });

  it('keeps its data in the directory it is given', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'drizzle-pglite-'));
    try {
      const first = new DrizzlePGlite(dir, fromTemplate());
      await first.exec('create table kept (v text); insert into kept values ($$here$$)');
      await first.close();
      const second = new DrizzlePGlite(dir);
      expect((await second.query<{ v: string }>('select v from kept')).rows).toEqual([{ v: 'here' }]);
      await second.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
