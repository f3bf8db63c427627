/**
 * The fuzz's generators agree with its oracle: for every request body and parameter of the OpenAPI document (and
 * the broker's own schemas for the bodies the document leaves open), what `validValue` makes conforms and obeys
 * the text rules, and what `invalidValue` makes does not. Without this, an "accepted invalid write" could be the
 * generator's mistake rather than the broker's.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../broker/api/app.ts';
import type { BrokerCore } from '../../broker/broker.ts';
import { type GenContext, invalidValue, validValue } from './arbitraries.ts';
import { CAPS, encode, jsonReasons } from './cases.ts';
import { overlays } from './engine.ts';
import { type ApiModel, apiModel } from './model.ts';
import { type JsonSchema, textRuleViolation, unstorable, violation } from './schema.ts';

/** Routes and the document are declared without calling the broker (as in openapi.test.ts). */
function standIn(): BrokerCore {
  const make = (): unknown =>
    new Proxy(() => make(), {
      get: (_target, key) => (key === 'then' ? undefined : make()),
    });
  return make() as BrokerCore;
}

let model: ApiModel;
let schemas: [string, JsonSchema][];
beforeAll(async () => {
  const response = await createApp(standIn()).request('/openapi.json');
  model = apiModel(await response.json());
  const extra = overlays(model);
  schemas = model.operations.flatMap((op) => [
    ...op.parameters.map((p): [string, JsonSchema] => [`${op.id} ${p.in} ${p.name}`, p.schema]),
    ...Object.entries(op.body?.content ?? {})
      .filter(([type]) => type === 'application/json')
      .map(([, schema]): [string, JsonSchema] => [`${op.id} body`, extra[op.id] ?? schema]),
  ]);
});

const context = (): GenContext => ({
  resolve: model.resolve,
  hints: { gpu: ['H100', 'A100-80GB'], tenant: ['alice'], '*key': ['fn', 'H100'] },
  caps: CAPS,
});

describe('the fuzz generators', () => {
  it('cover every operation of the document', () => {
    expect(model.operations.length).toBeGreaterThan(25);
    expect(schemas.filter(([name]) => name.endsWith(' body')).length).toBeGreaterThanOrEqual(8);
  });

  it('make valid values that conform and invalid values that do not, for every schema', () => {
    for (const [name, schema] of schemas) {
      fc.assert(
        fc.property(validValue(schema, context()), (value) => {
          expect(violation(value, schema, model.resolve), name).toBeUndefined();
          expect(textRuleViolation(value), name).toBeUndefined();
        }),
        { numRuns: 30, seed: 7 },
      );
      fc.assert(
        fc.property(invalidValue(schema, context()), ({ value, why }) => {
          const broken = violation(value, schema, model.resolve) ?? textRuleViolation(value);
          expect(broken, `${name}: ${why}`).toBeDefined();
        }),
        { numRuns: 30, seed: 7 },
      );
    }
  });

  it('judge a body from its text: unparseable, reserved keys and unstorable text are invalid', () => {
    const schema: JsonSchema = { type: 'object', additionalProperties: {} };
    const gen = context();
    expect(jsonReasons('{"a":1}', schema, gen)).toEqual([]);
    expect(jsonReasons('\ufeff{"a":1}', schema, gen)).toEqual([]);
    expect(jsonReasons('{"a":1,}', schema, gen)).toEqual(['not JSON']);
    expect(jsonReasons('{"__proto__":{}}', schema, gen)).toHaveLength(1);
    expect(jsonReasons('{"a":"\\u0000"}', schema, gen)).toHaveLength(1);
    expect(jsonReasons('{"a":"\\ud800"}', schema, gen)).toHaveLength(1);
    expect(
      jsonReasons('{"a":1e999}', { type: 'object', properties: { a: { type: 'number' } } }, gen),
    ).toHaveLength(1);
    expect(jsonReasons(`${'['.repeat(70)}${']'.repeat(70)}`, { type: 'array' }, gen)).toHaveLength(1);
  });

  it('encode lone surrogates as bytes that are not UTF-8, and dot segments so that URLs keep them', () => {
    expect(unstorable('\ud800')).toBe(true);
    expect(unstorable('😀')).toBe(false);
    expect(encode('\ud800')).toBe('%ED%A0%80');
    expect(encode('..')).toBe('%2E%2E');
    expect(encode('a b/é')).toBe('a%20b%2F%C3%A9');
  });
});
