/**
 * The `gpubroker` command line as a function: `buildProgram` registers the commands of a table (bin/commands.ts;
 * each lives with the folder that owns it), `runGpubroker` runs one command line and turns what it threw into one
 * line on stderr and an exit status. `bin/gpubroker.ts` calls it with `process.argv` (and `bin/agent.ts` with the
 * agent's commands only); tests call it in process.
 *
 * Exit status: 0; 2 for bad input (a usage error, any GpubrokerError); 1 for a command that could not run as
 * configured (a StartupError, a fault). A command may also set `process.exitCode` itself (a failed lease, a
 * damaged data directory); that stands when nothing was thrown.
 */
import { Command, CommanderError } from 'commander';
import { GpubrokerError, StartupError } from '../lib/errors.ts';

/** Exit status for bad input (usage errors), as documented in the README. */
export const EXIT_USAGE = 2;
/** Exit status for a command that could not run as configured (a start-up failure, a fault). */
export const EXIT_FAILURE = 1;

/** A command module's `register…` function: adds its commands to the program. */
export type Register = (program: Command) => void;
/** The commands a program may run: the top-level names a module registers, and how to load its `register…`. */
export type CommandTable = readonly (readonly [names: readonly string[], load: () => Promise<Register>])[];

/**
 * A new `gpubroker` program for the command line `args`: with the one command `args` names, or with every command
 * (help, no command, an unknown one). Commander keeps parse state, so one program per command line.
 */
export async function buildProgram(commands: CommandTable, args: readonly string[] = []): Promise<Command> {
  const program = new Command('gpubroker')
    .description('capacity planner and multi-cloud GPU broker')
    .showHelpAfterError()
    .exitOverride();
  const named = commands.filter(([names]) => args[0] !== undefined && names.includes(args[0]));
  const registers = await Promise.all((named.length > 0 ? named : commands).map(([, load]) => load()));
  for (const register of registers) register(program);
  return program;
}

export interface Outcome {
  /** The exit status from what the command threw; undefined when it threw nothing (see `process.exitCode`). */
  readonly code: number | undefined;
  /**
   * A start-up failure: whatever start-up left waiting (a resolver, a socket to a silent server) must not keep the
   * process alive, so the caller exits at once.
   */
  readonly exitAtOnce: boolean;
}

/**
 * Runs the command line `args` (what follows `gpubroker`). A failure is one line on stderr (`GPUBROKER_LOG=debug`
 * adds the stack for whoever debugs gpubroker itself); commander's own usage errors are already printed.
 */
export async function runGpubroker(commands: CommandTable, args: readonly string[]): Promise<Outcome> {
  try {
    const program = await buildProgram(commands, args);
    await program.parseAsync([...args], { from: 'user' });
    return { code: undefined, exitAtOnce: false };
  } catch (error) {
    if (error instanceof CommanderError)
      return { code: error.exitCode === 0 ? 0 : EXIT_USAGE, exitAtOnce: false };
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    process.stderr.write(`gpubroker: ${message}\n`);
    if (process.env.GPUBROKER_LOG === 'debug' && error instanceof Error && error.stack)
      process.stderr.write(`${error.stack}\n`);
    if (error instanceof StartupError) return { code: EXIT_FAILURE, exitAtOnce: true };
    return { code: error instanceof GpubrokerError ? EXIT_USAGE : EXIT_FAILURE, exitAtOnce: false };
  }
}

/** Ends the process as `outcome` says: at once after a start-up failure, else when nothing is left to do. */
export function exitWith(outcome: Outcome): void {
  if (outcome.exitAtOnce) process.exit(outcome.code);
  if (outcome.code !== undefined) process.exitCode = outcome.code;
}
