/**
 * fast-check arbitraries derived from JSON Schema: values a schema accepts (`validValue`), values it refuses
 * (`invalidValue`, each with the reason), and the hostile text and numbers a fuzz throws at every free field.
 *
 * `Hints` bend the generation toward what the broker knows (GPU types, vendors, tenants, ids it handed out), so
 * that valid requests reach the handlers' valid paths instead of stopping at "no such GPU"; `Caps` keep a few
 * valid but costly knobs small (how long a request waits, how long the solver may run), so that the run
 * measures the API rather than sleeping.
 */
import fc from 'fast-check';
import {
  deref,
  type JsonSchema,
  patternOf,
  RESERVED_KEYS,
  type Resolve,
  textRuleViolation,
  typesOf,
  violation,
} from './schema.ts';

/** Candidate values by property name (the last key of the path), tried alongside the schema's own. */
export type Hints = Readonly<Record<string, readonly unknown[]>>;
/** Upper bounds by property name for valid numbers and arrays, when the schema allows more. */
export type Caps = Readonly<Record<string, number>>;

export interface GenContext {
  readonly resolve: Resolve;
  readonly hints: Hints;
  readonly caps: Caps;
}

/** Text that is storable but unusual: right-to-left overrides, emoji, combining marks, zero-width, markup. */
export const ODD_TEXT = [
  ' ',
  '\u202eevil',
  'مرحبا',
  'שלום',
  '😀',
  '👩‍👩‍👧‍👦',
  'e\u0301',
  '\u200b',
  '\ufeff',
  '\u2028',
  '中文',
  'NaN',
  'Infinity',
  '-Infinity',
  '-0',
  '1e999',
  'null',
  'undefined',
  'true',
  '0x10',
  '%00',
  '%',
  '..',
  '../../etc/passwd',
  '<script>alert(1)</script>',
  "'; DROP TABLE tenants; --",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: template injection text, sent as it is.
  '${7*7}',
  '{{7*7}}',
  '\r\nX-Injected: 1',
  '\\',
  '"',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
] as const;

/** Text no field may hold: NUL and lone UTF-16 surrogates. */
export const UNSTORABLE_TEXT = [
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\udfff',
  'x\ud83d',
  '\udc00y',
  'ok\u0000',
] as const;

/** Numbers at the edges of what JSON and JavaScript represent. */
export const EDGE_NUMBERS = [
  0,
  -1,
  1,
  -0,
  0.5,
  -0.5,
  1e308,
  -1e308,
  5e-324,
  2 ** 31,
  -(2 ** 31),
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53),
  Number.MAX_SAFE_INTEGER,
  Number.MIN_SAFE_INTEGER,
  1e21,
  123456.789,
] as const;

/** JSON number tokens that JSON.parse turns into something surprising (Infinity, 0, rounding). */
export const NUMBER_TOKENS = [
  '1e999',
  '-1e999',
  '1e-999',
  '-0',
  '1E2',
  '1.0',
  '0.1e1',
  '123456789012345678901234567890',
  '9007199254740993',
  '0.0000000000000000000000001',
] as const;

const plainChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_.');
const printableChar = fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c));
const oddChar = fc.constantFrom('é', 'ß', '中', '😀', '\u202e', '\u200b', '\ufeff', 'ﷺ', '👩‍👧', 'Ω', '\t');
/** One storable character (or grapheme), mostly plain. */
export const storableChar = fc.oneof(
  { weight: 6, arbitrary: plainChar },
  { weight: 3, arbitrary: printableChar },
  { weight: 1, arbitrary: oddChar },
);

/** Cuts or pads `text` (by code points) so that its UTF-16 length lies in [min, max]. */
export function fitLength(text: string, min: number, max: number): string {
  let out = text;
  if (out.length > max) {
    const points = Array.from(out);
    while (points.length > 0 && points.join('').length > max) points.pop();
    out = points.join('');
  }
  while (out.length < min) out += 'a';
  return out;
}

/** A string of storable characters with a UTF-16 length in [min, max]; long ones are repetitive. */
export function storableString(min: number, max: number): fc.Arbitrary<string> {
  const short = fc
    .array(storableChar, {
      minLength: Math.min(min, 64),
      maxLength: Math.max(Math.min(max, 24), Math.min(min, 64)),
    })
    .map((chars) => fitLength(chars.join(''), min, max));
  if (max <= 64) return short;
  const long = fc
    .tuple(fc.integer({ min: Math.max(min, 65), max: Math.min(max, 100_000) }), storableChar)
    .map(([length, char]) => fitLength(char.repeat(Math.ceil(length / char.length)), min, max));
  return fc.oneof({ weight: 9, arbitrary: short }, { weight: 1, arbitrary: long });
}

/** Any storable JSON value, a few levels deep. */
export const anyJson: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.constantFrom(...EDGE_NUMBERS),
    storableString(0, 16),
    fc.constantFrom(...ODD_TEXT),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(storableString(1, 8).filter(notReserved), tie('value'), { maxKeys: 4 }),
  ),
})).value;

function notReserved(key: string): boolean {
  return !(RESERVED_KEYS as readonly string[]).includes(key);
}

/** `key` as an own enumerable property (assignment would set the prototype for `__proto__`). */
export function withKey<T extends object>(object: T, key: string, value: unknown): T {
  const copy = { ...object };
  Object.defineProperty(copy, key, { value, enumerable: true, writable: true, configurable: true });
  return copy;
}

/** Values that `schema` accepts and the API's text rules allow. */
export function validValue(schema: JsonSchema, ctx: GenContext, name = ''): fc.Arbitrary<unknown> {
  const s = deref(schema, ctx.resolve);
  const fromSchema = validFromSchema(s, ctx, name);
  const hinted = (ctx.hints[name] ?? []).filter((h) => violation(h, s, ctx.resolve) === undefined);
  const examples = [s.example, ...(s.examples ?? [])].filter(
    (e) => e !== undefined && violation(e, s, ctx.resolve) === undefined,
  );
  const known = [...hinted, ...examples];
  if (known.length === 0) return fromSchema;
  return fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...known) }, { weight: 1, arbitrary: fromSchema });
}

function validFromSchema(s: JsonSchema, ctx: GenContext, name: string): fc.Arbitrary<unknown> {
  const alternatives = s.anyOf ?? s.oneOf;
  if (alternatives) return fc.oneof(...alternatives.map((alt) => validValue({ ...alt }, ctx, name)));
  if (s.const !== undefined) return fc.constant(s.const);
  if (s.enum) return fc.constantFrom(...s.enum);
  const types = typesOf(s);
  if (types && types.length > 1)
    return fc.oneof(...types.map((type) => validFromSchema({ ...s, type }, ctx, name)));
  switch (types?.[0]) {
    case 'null':
      return fc.constant(null);
    case 'boolean':
      return fc.boolean();
    case 'integer': {
      const lo = Math.max(
        s.minimum ?? (s.exclusiveMinimum !== undefined ? Math.floor(s.exclusiveMinimum) + 1 : -(2 ** 31)),
        Number.MIN_SAFE_INTEGER,
      );
      const hi = Math.min(
        s.maximum ?? (s.exclusiveMaximum !== undefined ? Math.ceil(s.exclusiveMaximum) - 1 : 2 ** 31),
        ctx.caps[name] ?? Number.MAX_SAFE_INTEGER,
      );
      return fc.oneof(
        { weight: 4, arbitrary: fc.integer({ min: lo, max: Math.max(lo, Math.min(hi, lo + 16)) }) },
        { weight: 4, arbitrary: fc.integer({ min: lo, max: Math.max(lo, hi) }) },
        { weight: 1, arbitrary: fc.constantFrom(lo, Math.max(lo, hi)) },
      );
    }
    case 'number': {
      const min = s.minimum ?? s.exclusiveMinimum ?? -1e9;
      const max = Math.min(s.maximum ?? s.exclusiveMaximum ?? 1e9, ctx.caps[name] ?? Number.MAX_VALUE);
      const arb = fc.double({
        min,
        max,
        minExcluded: s.exclusiveMinimum !== undefined,
        maxExcluded: s.exclusiveMaximum !== undefined,
        noNaN: true,
        noDefaultInfinity: true,
      });
      const edges = [min, max, (min + max) / 2].filter((n) => violation(n, s, ctx.resolve) === undefined);
      return edges.length > 0
        ? fc.oneof({ weight: 4, arbitrary: arb }, { weight: 1, arbitrary: fc.constantFrom(...edges) })
        : arb;
    }
    case 'string': {
      const min = s.minLength ?? 0;
      const max = s.maxLength ?? 100_000;
      if (s.pattern !== undefined) {
        const re = patternOf(s.pattern);
        return fc.stringMatching(re).filter((text) => text.length >= min && text.length <= max);
      }
      return storableString(min, max);
    }
    case 'array': {
      const min = s.minItems ?? 0;
      const max = Math.max(min, Math.min(s.maxItems ?? 8, ctx.caps[name] ?? 8, 16));
      return fc.array(s.items ? validValue(s.items, ctx, name) : anyJson, { minLength: min, maxLength: max });
    }
    case 'object':
      return validObject(s, ctx);
    default:
      return anyJson;
  }
}

function validObject(s: JsonSchema, ctx: GenContext): fc.Arbitrary<unknown> {
  const properties = Object.entries(s.properties ?? {});
  const required = new Set(s.required ?? []);
  const fixed = fc.record(
    Object.fromEntries(properties.map(([key, sub]) => [key, validValue(sub, ctx, key)])),
    { requiredKeys: properties.map(([key]) => key).filter((key) => required.has(key)) },
  );
  if (s.additionalProperties === false || s.additionalProperties === undefined) return fixed;
  const valueSchema = s.additionalProperties === true ? {} : s.additionalProperties;
  const names = s.propertyNames ? deref(s.propertyNames, ctx.resolve) : {};
  const keyHints = (ctx.hints['*key'] ?? []).filter((k) => violation(k, names, ctx.resolve) === undefined);
  const key = fc
    .oneof(
      {
        weight: 2,
        arbitrary:
          names.pattern !== undefined
            ? fc.stringMatching(patternOf(names.pattern))
            : storableString(Math.max(names.minLength ?? 0, 1), 16),
      },
      ...(keyHints.length > 0 ? [{ weight: 2, arbitrary: fc.constantFrom(...(keyHints as string[])) }] : []),
    )
    .filter(
      (k) =>
        notReserved(k) &&
        !Object.hasOwn(s.properties ?? {}, k) &&
        violation(k, names, ctx.resolve) === undefined,
    );
  const extra = fc.dictionary(key, validValue(valueSchema, ctx, '*value'), { maxKeys: 4 });
  return fc.tuple(fixed, extra).map(([a, b]) => ({ ...b, ...a }));
}

export interface Invalid {
  readonly value: unknown;
  readonly why: string;
}

/** Values that `schema` refuses (by its own rules or the API's text rules), each with the reason. */
export function invalidValue(schema: JsonSchema, ctx: GenContext, name = ''): fc.Arbitrary<Invalid> {
  const s = deref(schema, ctx.resolve);
  const options: fc.Arbitrary<Invalid>[] = [];
  const wrong = wrongType(s, ctx);
  if (wrong) options.push(wrong);
  const types = typesOf(s) ?? [];
  if (types.includes('string') || s.enum) options.push(...invalidStrings(s, ctx));
  if (types.includes('integer') || types.includes('number')) options.push(invalidNumber(s, ctx));
  if (types.includes('array')) options.push(...invalidArrays(s, ctx, name));
  if (types.includes('object') || s.properties) options.push(...invalidObjects(s, ctx));
  if (types.length === 0 && !s.anyOf && !s.oneOf && !s.enum)
    options.push(
      fc.constantFrom(...UNSTORABLE_TEXT).map((value) => ({ value, why: 'unstorable text in a free value' })),
    );
  return fc
    .oneof(...options)
    .filter(
      ({ value }) => violation(value, s, ctx.resolve) !== undefined || textRuleViolation(value) !== undefined,
    );
}

function wrongType(s: JsonSchema, ctx: GenContext): fc.Arbitrary<Invalid> | undefined {
  const samples: unknown[] = [
    null,
    true,
    0,
    -1,
    1.5,
    '',
    'x',
    '1',
    'NaN',
    'true',
    [],
    [1],
    {},
    { a: 1 },
    1e308,
  ];
  const wrong = samples.filter((value) => violation(value, s, ctx.resolve) !== undefined);
  if (wrong.length === 0) return undefined;
  return fc.constantFrom(...wrong).map((value) => ({ value, why: `wrong type (${JSON.stringify(value)})` }));
}

function invalidStrings(s: JsonSchema, ctx: GenContext): fc.Arbitrary<Invalid>[] {
  const out: fc.Arbitrary<Invalid>[] = [
    fc.constantFrom(...UNSTORABLE_TEXT).map((value) => ({ value, why: 'NUL or lone surrogate' })),
    fc
      .tuple(
        validValue({ ...s, pattern: undefined, enum: undefined }, ctx),
        fc.constantFrom(...UNSTORABLE_TEXT),
      )
      .map(([valid, bad]) => ({
        value: `${String(valid)}${bad}`,
        why: 'valid text with NUL or a lone surrogate',
      })),
  ];
  if (s.maxLength !== undefined) {
    const max = s.maxLength;
    out.push(
      fc
        .tuple(fc.integer({ min: max + 1, max: Math.max(max + 1, 100_000) }), storableChar)
        .map(([length, char]) => ({
          value: char.repeat(Math.ceil(length / char.length)),
          why: `longer than maxLength ${max}`,
        })),
    );
  }
  if ((s.minLength ?? 0) > 0) out.push(fc.constant({ value: '', why: 'empty (minLength)' }));
  if (s.pattern !== undefined || s.enum) {
    const re = s.pattern !== undefined ? patternOf(s.pattern) : undefined;
    out.push(
      fc
        .oneof(fc.constantFrom(...ODD_TEXT), storableString(0, 24))
        .filter((text) => (re ? !re.test(text) : !s.enum?.includes(text)))
        .map((value) => ({
          value,
          why: s.pattern !== undefined ? `does not match ${s.pattern}` : 'not in the enum',
        })),
    );
  }
  return out;
}

function invalidNumber(s: JsonSchema, _ctx: GenContext): fc.Arbitrary<Invalid> {
  const bad: { value: unknown; why: string }[] = [];
  if (s.minimum !== undefined)
    bad.push({ value: s.minimum - 1, why: 'below minimum' }, { value: -1e308, why: 'huge negative' });
  if (s.exclusiveMinimum !== undefined) bad.push({ value: s.exclusiveMinimum, why: 'at exclusiveMinimum' });
  if (s.maximum !== undefined)
    bad.push({ value: s.maximum + 1, why: 'above maximum' }, { value: 1e308, why: 'huge' });
  if (typesOf(s)?.includes('integer') && !typesOf(s)?.includes('number'))
    bad.push(
      { value: (s.minimum ?? 0) + 0.5, why: 'not an integer' },
      { value: 2 ** 53 + 2, why: 'unsafe integer' },
    );
  bad.push(
    ...['NaN', 'Infinity', '-0', '1e999', '12'].map((value) => ({ value, why: 'number as a string' })),
  );
  return fc.constantFrom(...bad);
}

function invalidArrays(s: JsonSchema, ctx: GenContext, name: string): fc.Arbitrary<Invalid>[] {
  const out: fc.Arbitrary<Invalid>[] = [];
  const items = s.items ? deref(s.items, ctx.resolve) : {};
  if ((s.minItems ?? 0) > 0) out.push(fc.constant({ value: [], why: 'fewer than minItems' }));
  if (s.maxItems !== undefined) {
    const max = s.maxItems;
    out.push(
      validValue(items, ctx, name).map((item) => ({
        value: Array.from({ length: max + 1 }, () => item),
        why: `more than maxItems ${max}`,
      })),
    );
  }
  if (s.items) {
    const min = Math.max(s.minItems ?? 0, 1);
    out.push(
      fc
        .tuple(
          fc.array(validValue(items, ctx, name), { minLength: min - 1, maxLength: min + 2 }),
          invalidValue(items, ctx, name),
          fc.nat(),
        )
        .map(([good, bad, at]) => {
          const list = [...good];
          list.splice(at % (list.length + 1), 0, bad.value);
          return { value: list, why: `item: ${bad.why}` };
        }),
    );
  }
  return out;
}

function invalidObjects(s: JsonSchema, ctx: GenContext): fc.Arbitrary<Invalid>[] {
  const base = validValue(s, ctx).filter(
    (v): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v),
  );
  const out: fc.Arbitrary<Invalid>[] = [
    fc
      .tuple(base, fc.constantFrom(...RESERVED_KEYS), anyJson)
      .map(([object, key, value]) => ({ value: withKey(object, key, value), why: `reserved key "${key}"` })),
  ];
  const required = s.required ?? [];
  if (required.length > 0)
    out.push(
      fc.tuple(base, fc.constantFrom(...required)).map(([object, key]) => {
        const { [key]: _gone, ...rest } = object;
        return { value: rest, why: `missing required "${key}"` };
      }),
    );
  if (s.additionalProperties === false)
    out.push(
      fc
        .tuple(
          base,
          fc.oneof(storableString(1, 12), fc.constantFrom('id', 'admin', 'role', 'tenantId', 'toString')),
          anyJson,
        )
        .filter(([, key]) => !(key in (s.properties ?? {})))
        .map(([object, key, value]) => ({ value: withKey(object, key, value), why: `unknown key "${key}"` })),
    );
  const properties = Object.entries(s.properties ?? {});
  if (properties.length > 0)
    out.push(
      fc.constantFrom(...properties).chain(([key, sub]) =>
        fc.tuple(base, invalidValue(sub, ctx, key)).map(([object, bad]) => ({
          value: withKey(object, key, bad.value),
          why: `${key}: ${bad.why}`,
        })),
      ),
    );
  if (s.additionalProperties && typeof s.additionalProperties === 'object') {
    const valueSchema = s.additionalProperties;
    out.push(
      fc
        .tuple(base, storableString(1, 8), invalidValue(valueSchema, ctx, '*value'))
        .map(([object, key, bad]) => ({
          value: withKey(object, key.replace(/^(__proto__|constructor|prototype)$/, 'k'), bad.value),
          why: `record value: ${bad.why}`,
        })),
    );
  }
  const names = s.propertyNames ? deref(s.propertyNames, ctx.resolve) : undefined;
  if ((names?.minLength ?? 0) > 0)
    out.push(base.map((object) => ({ value: withKey(object, '', 1), why: 'empty key' })));
  if (names?.pattern !== undefined) {
    const re = patternOf(names.pattern);
    const value =
      s.additionalProperties && typeof s.additionalProperties === 'object' ? s.additionalProperties : {};
    out.push(
      fc
        .tuple(
          base,
          fc.oneof(fc.constantFrom(...ODD_TEXT), storableString(1, 12)),
          validValue(value, ctx, '*value'),
        )
        .filter(([, key]) => !re.test(key) && notReserved(key))
        .map(([object, key, v]) => ({
          value: withKey(object, key, v),
          why: `key "${key}" does not match ${names.pattern}`,
        })),
    );
  }
  return out;
}

/** A value nested `depth` levels deep (`[[[…]]]` or `{"a":{"a":…}}`), as JSON text: deeper than the API takes. */
export function deeplyNested(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array'
    ? `${'['.repeat(depth)}1${']'.repeat(depth)}`
    : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}
