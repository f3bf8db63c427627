/**
 * The `gpubroker` command line as a function: `buildProgram` registers the commands (each lives with the folder
 * that owns it), `runGpubroker` runs one command line and turns what it threw into one line on stderr and an exit
 * status. `bin/gpubroker.ts` calls it with `process.argv`; tests call it in process.
 *
 * A command's module loads only when its command runs: `serve` does not load the charts of `simulate` or the
 * solver's CLI (start-up time is restart time). Help, no command and an unknown command load them all.
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

type Register = (program: Command) => void;

/**
 * Every command, in the order help lists them: the top-level names a module registers, and how to load its
 * `register…` function. Adding a command is one line here.
 */
const COMMANDS: readonly (readonly [names: readonly string[], load: () => Promise<Register>])[] = [
  [['plan'], async () => (await import('../broker/cli/plan-what-if.ts')).registerPlanCommand],
  [['serve'], async () => (await import('../broker/cli/serve.ts')).registerServeCommand],
  [['agent', 'agent-host'], async () => (await import('../agent/cli.ts')).registerAgentCommand],
  [['db'], async () => (await import('../broker/cli/db.ts')).registerDbCommand],
  [['clouds'], async () => (await import('../providers/remote/cli.ts')).registerCloudsCommand],
  [['run', 'deploy'], async () => (await import('../sdk/cli/run.ts')).registerRunCommands],
  [['lease'], async () => (await import('../sdk/cli/lease.ts')).registerLeaseCommand],
  [['policy'], async () => (await import('../broker/cli/policy.ts')).registerPolicyCommand],
  [['plans'], async () => (await import('../broker/cli/plans.ts')).registerPlansCommand],
  [['token'], async () => (await import('../broker/cli/token.ts')).registerTokenCommand],
  [['usage'], async () => (await import('../broker/cli/usage.ts')).registerUsageCommand],
  [['invoice'], async () => (await import('../broker/cli/invoice.ts')).registerInvoiceCommand],
  [['costs'], async () => (await import('../broker/cli/costs.ts')).registerCostsCommand],
  [['prices'], async () => (await import('../broker/cli/prices.ts')).registerPricesCommand],
  [['tenant'], async () => (await import('../broker/cli/tenant.ts')).registerTenantCommand],
  [['simulate'], async () => (await import('../simulations/cli.ts')).registerSimulateCommand],
];

/**
 * A new `gpubroker` program for the command line `args`: with the one command `args` names, or with every command
 * (help, no command, an unknown one). Commander keeps parse state, so one program per command line.
 */
export async function buildProgram(args: readonly string[] = []): Promise<Command> {
  const program = new Command('gpubroker')
    .description('capacity planner and multi-cloud GPU broker')
    .showHelpAfterError()
    .exitOverride();
  const named = COMMANDS.filter(([names]) => args[0] !== undefined && names.includes(args[0]));
  const registers = await Promise.all((named.length > 0 ? named : COMMANDS).map(([, load]) => load()));
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
export async function runGpubroker(args: readonly string[]): Promise<Outcome> {
  try {
    const program = await buildProgram(args);
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
