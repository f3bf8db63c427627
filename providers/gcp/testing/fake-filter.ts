/**
 * The subset of Compute Engine list filters the fake understands: AIP-160 comparisons `field = value`,
 * `field != value`, `field:*` (is set) and `field:value`, on nested fields such as `labels.env`, one per
 * parenthesised term, all ANDed ("(scheduling.automaticRestart = true) (cpuPlatform = "Intel Skylake")"), as the
 * `filter` parameter of https://cloud.google.com/compute/docs/reference/rest/v1/instances/aggregatedList describes.
 * OR, comparisons of order and the older regular-expression form (`eq`, `ne`) are not supported: the fake answers
 * them with 400 invalid, so a test notices.
 */
export type Predicate = (resource: unknown) => boolean;

const TERM = /^\s*(?:AND\s+)?\(?\s*([A-Za-z_][\w.-]*)\s*(=|!=|:)\s*("(?:[^"\\]|\\.)*"|[^\s()"]+)\s*\)?\s*/;

export function parseFilter(text: string | undefined): Predicate {
  const terms: Predicate[] = [];
  let rest = (text ?? '').trim();
  while (rest.length > 0) {
    const match = TERM.exec(rest);
    if (!match || /^\s*OR\b/.test(rest)) throw new Error(`unsupported filter near "${rest}"`);
    const [whole, path = '', op = '', raw = ''] = match;
    const value = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
    terms.push(comparison(path, op, value));
    rest = rest.slice(whole.length);
  }
  return (resource) => terms.every((term) => term(resource));
}

function comparison(path: string, op: string, value: string): Predicate {
  return (resource) => {
    const actual = lookup(resource, path.split('.'));
    if (op === ':' && value === '*') return actual !== undefined && actual !== null;
    const text = actual === undefined || actual === null ? undefined : String(actual);
    if (op === '=') return text === value;
    if (op === '!=') return text !== value;
    return text?.includes(value) ?? false;
  };
}

function lookup(resource: unknown, path: readonly string[]): unknown {
  let current = resource;
  for (const part of path) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}
