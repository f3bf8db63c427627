/**
 * Arguments and results cross the wire as JSON. This checks a value before it is sent, so a value that cannot
 * cross (a function, a symbol, a bigint, undefined inside an array, a class instance with methods, a cycle) fails
 * at the call site with the path of the offending part, instead of arriving changed or not at all.
 */

export function assertWireSafe(value: unknown, path: string, seen: Set<object> = new Set()): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value))
        throw new TypeError(`${path}: ${value} cannot be sent (JSON has no NaN or Infinity)`);
      return;
    case 'undefined':
      throw new TypeError(`${path}: undefined cannot be sent (use null)`);
    case 'function':
      throw new TypeError(`${path}: a function cannot be sent to a remote function`);
    case 'symbol':
    case 'bigint':
      throw new TypeError(`${path}: a ${typeof value} cannot be sent (convert it to a string or number)`);
  }
  if (value === null) return;
  const object = value as object;
  if (seen.has(object)) throw new TypeError(`${path}: a cyclic structure cannot be sent`);
  seen.add(object);
  if (Array.isArray(object)) {
    for (const [i, item] of object.entries()) assertWireSafe(item, `${path}[${i}]`, seen);
  } else {
    const proto = Object.getPrototypeOf(object);
    if (proto !== Object.prototype && proto !== null)
      throw new TypeError(
        `${path}: a ${proto?.constructor?.name ?? 'class'} instance cannot be sent (send plain objects, arrays, strings, numbers, booleans, null)`,
      );
    for (const [key, item] of Object.entries(object))
      if (item !== undefined) assertWireSafe(item, `${path}.${key}`, seen);
  }
  seen.delete(object);
}
