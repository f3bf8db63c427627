/** wire.gen.ts is what `npm run generate:wire` writes for the broker's current OpenAPI document. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { WIRE_FILE, wireTypes } from './scripts/generate-wire.ts';

describe('wire types', () => {
  it('are generated from the current OpenAPI document (run `npm run generate:wire` when this fails)', async () => {
    expect(readFileSync(WIRE_FILE, 'utf8')).toBe(await wireTypes());
  });
});
