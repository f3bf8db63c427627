/**
 * Input that no schema should have to think about: text PostgreSQL cannot store (NUL, lone UTF-16 surrogates,
 * which would be silently replaced on the way to UTF-8) and object keys that mean something to JavaScript itself
 * (`__proto__`, `constructor`, `prototype`: a schema's parse may drop them, or set a prototype, instead of refusing
 * them). The HTTP API checks every request with these (broker/api/input-guard.ts), and every CLI that reads a JSON
 * file parses it with `parseJsonInput`, so the rules live in one place.
 */
import { ValidationError } from './errors.ts';

export const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);
/** Deeper documents are refused rather than walked: no request of ours nests beyond a handful of levels. */
export const MAX_JSON_DEPTH = 64;

/** Why `text` cannot be stored, or undefined when it can. */
export function unstorableText(text: string): string | undefined {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0) return 'contains a NUL character (\\u0000), which cannot be stored';
    if (code >= 0xd800 && code <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      return 'contains an unpaired UTF-16 surrogate, which is not valid Unicode';
    }
    if (code >= 0xdc00 && code <= 0xdfff)
      return 'contains an unpaired UTF-16 surrogate, which is not valid Unicode';
  }
  return undefined;
}

export interface JsonInputProblem {
  /** Dotted path of the offending key or value (`policy.buffer.__proto__`); empty for the document itself. */
  readonly path: string;
  readonly problem: string;
}

/** The first reserved key, unstorable string or excessive nesting in a parsed JSON value. */
export function findJsonInputProblem(value: unknown): JsonInputProblem | undefined {
  // Iterative, so that a hostile document cannot exhaust the stack.
  const stack: { value: unknown; path: string[] }[] = [{ value, path: [] }];
  while (stack.length > 0) {
    const { value: node, path } = stack.pop() as { value: unknown; path: string[] };
    if (path.length > MAX_JSON_DEPTH)
      return { path: path.slice(0, 3).join('.'), problem: `nests deeper than ${MAX_JSON_DEPTH} levels` };
    if (typeof node === 'string') {
      const problem = unstorableText(node);
      if (problem) return { path: path.join('.'), problem };
    } else if (Array.isArray(node)) {
      for (let i = node.length - 1; i >= 0; i--) stack.push({ value: node[i], path: [...path, String(i)] });
    } else if (node !== null && typeof node === 'object') {
      const keys = Object.keys(node);
      for (let i = keys.length - 1; i >= 0; i--) {
        const key = keys[i] as string;
        const at = [...path, key];
        if (RESERVED_KEYS.has(key)) return { path: at.join('.'), problem: `"${key}" is a reserved key` };
        const keyProblem = unstorableText(key);
        if (keyProblem) return { path: at.join('.'), problem: `key ${keyProblem}` };
        stack.push({ value: (node as Record<string, unknown>)[key], path: at });
      }
    }
  }
  return undefined;
}

/**
 * Parses a JSON document from a user (a file given to the CLI, a request body) and refuses what
 * `findJsonInputProblem` finds, as a ValidationError naming `source` and the dotted path.
 */
export function parseJsonInput(text: string, source: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ValidationError(source, `is not valid JSON (${(error as Error).message})`);
  }
  const problem = findJsonInputProblem(value);
  if (problem) throw new ValidationError([source, problem.path].filter(Boolean).join('.'), problem.problem);
  return value;
}
