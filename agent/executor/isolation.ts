/**
 * `--isolation`: how an agent runs containers. `bubblewrap` (the default of `gpubroker agent`) isolates each one
 * (`sandbox/bubblewrap.ts`) and refuses to start without it; `none` runs them as plain child processes and says
 * so; `auto` (the default of the agent host beside `gpubroker serve`, on the operator's own machine) isolates where
 * the machine allows and otherwise says on screen why not. Never unisolated silently.
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { ValidationError } from '../../lib/errors.ts';
import { BubblewrapSandbox } from './sandbox/bubblewrap.ts';

export const ISOLATION_MODES = ['bubblewrap', 'none', 'auto'] as const;
export type IsolationMode = (typeof ISOLATION_MODES)[number];

export interface Isolation {
  readonly sandbox?: BubblewrapSandbox;
  /** One line for the operator: what containers run in. */
  readonly summary: string;
}

export function parseIsolationMode(text: string, flag = '--isolation'): IsolationMode {
  if ((ISOLATION_MODES as readonly string[]).includes(text)) return text as IsolationMode;
  throw new ValidationError(flag, `"${text}" is not one of ${ISOLATION_MODES.join(', ')}`);
}

/**
 * What `mode` comes to on this machine, without setting anything up (for a process that starts agents rather than
 * being one): `bubblewrap` or `none`, and the line that says so. `bubblewrap` that cannot be had throws.
 */
export function resolveIsolation(
  mode: IsolationMode,
  flag = '--isolation',
): { mode: 'bubblewrap' | 'none'; summary: string } {
  if (mode === 'none') return { mode, summary: UNISOLATED };
  try {
    BubblewrapSandbox.check();
    return { mode: 'bubblewrap', summary: ISOLATED };
  } catch (error) {
    return { mode: 'none', summary: unavailable(mode, flag, error) };
  }
}

const ISOLATED =
  'isolated in bubblewrap: own namespaces, cgroup limits, user and read-only root per container';
const UNISOLATED = "unisolated (--isolation none): containers are plain processes of the agent's user";

/** Isolation that cannot be had: an error for `bubblewrap`, the line that says why for `auto`. */
function unavailable(mode: IsolationMode, flag: string, error: unknown): string {
  const why = (error as Error).message;
  if (mode === 'bubblewrap') throw new ValidationError(flag, why);
  return `unisolated: ${why}`;
}

/**
 * Sets up the isolation asked for; `bubblewrap` that cannot be had throws ValidationError with the reason. The
 * agent's state directory names its cgroups, so that what a previous run of the same agent left running is ended
 * (`leftovers`), and agents sharing a machine never touch each other's containers.
 */
export async function openIsolation(
  mode: IsolationMode,
  stateDir: string,
  flag = '--isolation',
): Promise<Isolation & { leftovers?: number }> {
  if (mode === 'none') return { summary: UNISOLATED };
  let sandbox: BubblewrapSandbox;
  try {
    sandbox = BubblewrapSandbox.detect({
      scope: `agent-${createHash('sha256').update(resolve(stateDir)).digest('hex').slice(0, 16)}`,
    });
  } catch (error) {
    return { summary: unavailable(mode, flag, error) };
  }
  return { sandbox, summary: ISOLATED, leftovers: await sandbox.sweepLeftovers() };
}
