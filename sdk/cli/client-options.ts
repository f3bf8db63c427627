/**
 * What the commands that talk to a running broker share: `--url` and `--token` (with the SDK's defaults), and how
 * a failure becomes one line on stderr and an exit status: 2 for what the caller can fix (bad flags, a 4xx
 * answer), 1 for what the broker or the network failed at (a 5xx answer, no broker at the URL, a failed lease).
 */

import { ValidationError } from '../../lib/errors.ts';
import { Broker, BrokerApiError, LeaseFailedError } from '../index.ts';
import type { ClientFlags } from './client-flags.ts';

export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A client for the flags; a URL that is not http(s) is a ValidationError naming `--url`. */
export function brokerClient(flags: ClientFlags): Broker {
  const broker = new Broker({
    ...(flags.url !== undefined ? { url: flags.url } : {}),
    ...(flags.token !== undefined ? { token: flags.token } : {}),
  });
  let protocol: string | undefined;
  try {
    protocol = new URL(broker.url).protocol;
  } catch {
    protocol = undefined;
  }
  if (protocol !== 'http:' && protocol !== 'https:')
    throw new ValidationError('--url', `"${broker.url}" is not an http:// or https:// URL`);
  return broker;
}

/**
 * Runs `work` against the broker; a failure the broker or the network reports is printed as one line and sets the
 * exit status. Anything else (a ValidationError from a flag or a file) is left to the dispatcher.
 */
export async function talkTo(broker: Broker, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (error) {
    const failure = describeFailure(error, broker.url);
    if (!failure) throw error;
    process.stderr.write(`gpubroker: ${failure.message}\n`);
    process.exitCode = failure.exitCode;
  }
}

/** The message and exit status of a failure talking to the broker at `url`; undefined for any other error. */
export function describeFailure(
  error: unknown,
  url: string,
): { message: string; exitCode: number } | undefined {
  if (error instanceof BrokerApiError) {
    // The API's detail usually starts with the field already; name it only when it does not.
    const field =
      error.field && !error.problem.detail.startsWith(`${error.field}:`) ? ` (field: ${error.field})` : '';
    const hint =
      error.status === 401
        ? '; pass --token, set GPUBROKER_TOKEN or run in the directory of .gpubroker/'
        : '';
    return {
      message: `${error.problem.title}: ${error.problem.detail}${field}${hint}`,
      exitCode: error.status < 500 ? EXIT_USAGE : EXIT_FAILURE,
    };
  }
  if (error instanceof LeaseFailedError) return { message: error.message, exitCode: EXIT_FAILURE };
  if (error instanceof TypeError && error.message === 'fetch failed') {
    const cause = error.cause as { code?: string; message?: string } | undefined;
    const why = cause?.code ?? cause?.message;
    return {
      message: `cannot reach the broker at ${url}${why ? ` (${why})` : ''}; is \`gpubroker serve\` running there?`,
      exitCode: EXIT_FAILURE,
    };
  }
  if (error instanceof SyntaxError)
    return { message: `the answer from ${url} is not JSON: is it a gpubroker?`, exitCode: EXIT_FAILURE };
  return undefined;
}

/** Prints a value as one line of JSON on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** A choice flag's value, or a ValidationError naming the flag and the choices. */
export function parseChoice<T extends string>(flag: string, text: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(text))
    throw new ValidationError(flag, `"${text}" is not one of ${choices.join(', ')}`);
  return text as T;
}

/** "a,b" → ["a", "b"]; an empty item is a ValidationError naming the flag. */
export function parseList(flag: string, text: string): string[] {
  const items = text.split(',').map((item) => item.trim());
  if (items.some((item) => item === ''))
    throw new ValidationError(flag, `"${text}" is not a comma-separated list of names`);
  return items;
}

/** A duration as a short age: 42s, 5m, 3h, 2d (rounded down). */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}
