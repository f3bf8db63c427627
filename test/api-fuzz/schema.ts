/**
 * The JSON Schema subset the OpenAPI document (and zod's `toJSONSchema`) uses, a validator for it, and the text
 * rules every request must obey (no NUL, no lone UTF-16 surrogate, no reserved object key, no nesting past 64).
 *
 * The validator is the fuzz's own oracle of what the document allows, written independently of the broker: the
 * broker validates with zod, the fuzz with this, and a request this calls invalid must not be accepted. Lengths are
 * counted in UTF-16 code units, as JavaScript (and zod) count them.
 */

export interface JsonSchema {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  propertyNames?: JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  default?: unknown;
  example?: unknown;
  examples?: unknown[];
  description?: string;
}

/** Keys that mean something to JavaScript itself; the API refuses them anywhere in a body. */
export const RESERVED_KEYS = ['__proto__', 'constructor', 'prototype'] as const;
/** Deepest nesting of a JSON body the API takes. */
export const MAX_DEPTH = 64;

export type Resolve = (ref: string) => JsonSchema;

/** A resolver for `#/components/schemas/Name` references into `document`. */
export function resolverFor(document: unknown): Resolve {
  return (ref) => {
    if (!ref.startsWith('#/')) throw new Error(`unsupported $ref ${ref}`);
    let node: unknown = document;
    for (const part of ref.slice(2).split('/')) node = (node as Record<string, unknown>)?.[part];
    if (!node || typeof node !== 'object') throw new Error(`unresolved $ref ${ref}`);
    return node as JsonSchema;
  };
}

export function deref(schema: JsonSchema, resolve: Resolve): JsonSchema {
  let s = schema;
  for (let i = 0; s.$ref && i < 32; i++) s = { ...resolve(s.$ref), ...withoutRef(s) };
  return s;
}

function withoutRef(schema: JsonSchema): JsonSchema {
  const { $ref: _ref, ...rest } = schema;
  return rest;
}

export function typesOf(schema: JsonSchema): string[] | undefined {
  if (schema.type === undefined) return undefined;
  return Array.isArray(schema.type) ? schema.type : [schema.type];
}

function jsonTypeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function typeMatches(value: unknown, type: string): boolean {
  switch (type) {
    case 'null':
      return value === null;
    case 'boolean':
      return typeof value === 'boolean';
    case 'string':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'integer':
      return typeof value === 'number' && Number.isSafeInteger(value);
    case 'array':
      return Array.isArray(value);
    case 'object':
      return value !== null && typeof value === 'object' && !Array.isArray(value);
    default:
      return true;
  }
}

const patternCache = new Map<string, RegExp>();
export function patternOf(source: string): RegExp {
  let re = patternCache.get(source);
  if (!re) {
    re = new RegExp(source);
    patternCache.set(source, re);
  }
  return re;
}

/** Why `value` does not conform to `schema` (`path: reason`), or undefined when it does. */
export function violation(
  value: unknown,
  schema: JsonSchema,
  resolve: Resolve,
  path = '',
): string | undefined {
  const s = deref(schema, resolve);
  const at = (reason: string) => `${path || '(root)'}: ${reason}`;
  if (s.allOf)
    for (const part of s.allOf) {
      const v = violation(value, part, resolve, path);
      if (v) return v;
    }
  const alternatives = s.anyOf ?? s.oneOf;
  if (alternatives) {
    const reasons = alternatives.map((alt) => violation(value, alt, resolve, path));
    if (reasons.every((r) => r !== undefined)) return reasons[0];
  }
  if (s.const !== undefined && !sameJson(value, s.const)) return at(`must be ${JSON.stringify(s.const)}`);
  if (s.enum && !s.enum.some((e) => sameJson(e, value))) return at(`not one of ${JSON.stringify(s.enum)}`);
  const types = typesOf(s);
  if (types && !types.some((t) => typeMatches(value, t)))
    return at(`expected ${types.join(' or ')}, got ${jsonTypeOf(value)}`);
  if (typeof value === 'string') {
    if (s.minLength !== undefined && value.length < s.minLength) return at(`shorter than ${s.minLength}`);
    if (s.maxLength !== undefined && value.length > s.maxLength) return at(`longer than ${s.maxLength}`);
    if (s.pattern !== undefined && !patternOf(s.pattern).test(value))
      return at(`does not match ${s.pattern}`);
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return at('not finite');
    if (s.minimum !== undefined && value < s.minimum) return at(`below ${s.minimum}`);
    if (s.maximum !== undefined && value > s.maximum) return at(`above ${s.maximum}`);
    if (s.exclusiveMinimum !== undefined && value <= s.exclusiveMinimum)
      return at(`not above ${s.exclusiveMinimum}`);
    if (s.exclusiveMaximum !== undefined && value >= s.exclusiveMaximum)
      return at(`not below ${s.exclusiveMaximum}`);
  }
  if (Array.isArray(value)) {
    if (s.minItems !== undefined && value.length < s.minItems) return at(`fewer than ${s.minItems} items`);
    if (s.maxItems !== undefined && value.length > s.maxItems) return at(`more than ${s.maxItems} items`);
    if (s.items)
      for (const [i, item] of value.entries()) {
        const v = violation(item, s.items, resolve, join(path, String(i)));
        if (v) return v;
      }
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const record = value as Record<string, unknown>;
    for (const key of s.required ?? [])
      if (!Object.hasOwn(record, key)) return at(`missing required "${key}"`);
    for (const key of Object.keys(record)) {
      const known = s.properties?.[key];
      if (known) {
        const v = violation(record[key], known, resolve, join(path, key));
        if (v) return v;
        continue;
      }
      if (s.propertyNames) {
        const v = violation(key, s.propertyNames, resolve, join(path, key));
        if (v) return `${v} (key)`;
      }
      if (s.additionalProperties === false) return at(`unknown key "${key}"`);
      if (s.additionalProperties && typeof s.additionalProperties === 'object') {
        const v = violation(record[key], s.additionalProperties, resolve, join(path, key));
        if (v) return v;
      }
    }
  }
  return undefined;
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Whether the text holds a NUL or a lone UTF-16 surrogate (which no API field may hold). */
export function unstorable(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0) return true;
    if (code >= 0xd800 && code <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      return true;
    }
    if (code >= 0xdc00 && code <= 0xdfff) return true;
  }
  return false;
}

/** Why a parsed JSON body breaks the text rules (reserved key, unstorable text, nesting), or undefined. */
export function textRuleViolation(value: unknown): string | undefined {
  const stack: { node: unknown; depth: number; path: string }[] = [{ node: value, depth: 0, path: '' }];
  while (stack.length > 0) {
    const { node, depth, path } = stack.pop() as { node: unknown; depth: number; path: string };
    if (depth > MAX_DEPTH) return `${path}: nested deeper than ${MAX_DEPTH}`;
    if (typeof node === 'string') {
      if (unstorable(node)) return `${path}: NUL or lone surrogate`;
    } else if (Array.isArray(node)) {
      node.forEach((item, i) => {
        stack.push({ node: item, depth: depth + 1, path: join(path, String(i)) });
      });
    } else if (node !== null && typeof node === 'object') {
      for (const key of Object.keys(node)) {
        if ((RESERVED_KEYS as readonly string[]).includes(key)) return `${join(path, key)}: reserved key`;
        if (unstorable(key)) return `${join(path, key)}: key with NUL or lone surrogate`;
        stack.push({ node: (node as Record<string, unknown>)[key], depth: depth + 1, path: join(path, key) });
      }
    }
  }
  return undefined;
}
