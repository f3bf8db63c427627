/**
 * What may cross the IPC channel between the executor and a container: the structured-clone types, as plain data.
 * Structured clone throws on functions and symbols but silently turns a class instance into a plain object (its
 * prototype and methods are lost), so both directions check values with `whyNotSendable` first and fail with a
 * message naming the offending path. Plain JavaScript, because the container worker imports it without a loader.
 */

/** Built-in types that structured clone copies (exactly these: a subclass of Map or Array would lose its methods). */
const CLONEABLE_PROTOTYPES = new Set(
  [Array, Date, RegExp, Map, Set, ArrayBuffer, Boolean, Number, String, BigInt].map((type) => type.prototype),
);

/**
 * Returns undefined when `value` survives structured clone unchanged, otherwise why not, e.g.
 * `args[0].onDone is a function`. `path` names the value in the message.
 */
export function whyNotSendable(value, path) {
  return check(value, path, new Set());
}

function check(value, path, seen) {
  if (typeof value === 'function') return `${path} is a function`;
  if (typeof value === 'symbol') return `${path} is a symbol`;
  if (value === null || typeof value !== 'object') return undefined;
  if (seen.has(value)) return undefined;
  seen.add(value);
  if (ArrayBuffer.isView(value) || value instanceof Error) return undefined;
  const prototype = Object.getPrototypeOf(value);
  // Errors of any class are sent (as the built-in Error type of that name, with message and stack).
  if (prototype !== Object.prototype && prototype !== null && !CLONEABLE_PROTOTYPES.has(prototype))
    return `${path} is a ${className(value)} instance (structured clone would drop its class and methods; send plain data)`;
  if (value instanceof Date || value instanceof RegExp || value instanceof ArrayBuffer) return undefined;
  if (value instanceof Map) {
    let i = 0;
    for (const [key, entry] of value) {
      const why = check(key, `${path}.keys()[${i}]`, seen) ?? check(entry, `${path}.get(…)[${i}]`, seen);
      if (why) return why;
      i++;
    }
    return undefined;
  }
  if (value instanceof Set) {
    let i = 0;
    for (const entry of value) {
      const why = check(entry, `${path}.values()[${i}]`, seen);
      if (why) return why;
      i++;
    }
    return undefined;
  }
  for (const key of Object.keys(value)) {
    const why = check(value[key], Array.isArray(value) ? `${path}[${key}]` : `${path}.${key}`, seen);
    if (why) return why;
  }
  return undefined;
}

function className(value) {
  const name = value.constructor?.name;
  return typeof name === 'string' && name !== '' ? name : 'class';
}
