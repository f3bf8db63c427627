/**
 * Returns undefined when `value` survives structured clone unchanged, otherwise why not, e.g.
 * `args[0].onDone is a function`. `path` names the value in the message.
 */
export function whyNotSendable(value: unknown, path: string): string | undefined;
