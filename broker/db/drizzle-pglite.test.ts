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
