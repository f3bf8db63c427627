/**
 * The `gpubroker` command line as a function: `buildProgram` registers every command (each lives with the folder
 * that owns it), `runGpubroker` runs one command line and turns what it threw into one line on stderr and an exit
 * status. `bin/gpubroker.ts` calls it with `process.argv`; tests call it in process.
 *
 * Exit status: 0; 2 for bad input (a usage error, any GpubrokerError); 1 for a command that could not run as
 * configured (a StartupError, a fault). A command may also set `process.exitCode` itself (a failed lease, a
 * damaged data directory); that stands when nothing was thrown.
 */
import { Command, CommanderError } from 'commander';
import { registerCostsCommand } from '../broker/cli/costs.ts';
import { registerDbCommand } from '../broker/cli/db.ts';
import { registerInvoiceCommand } from '../broker/cli/invoice.ts';
import { registerLeaseCommand } from '../broker/cli/lease.ts';
import { registerPolicyCommand } from '../broker/cli/policy.ts';
import { registerPricesCommand } from '../broker/cli/prices.ts';
import { registerRunCommands } from '../broker/cli/run.ts';
import { registerServeCommand } from '../broker/cli/serve.ts';
import { registerTenantCommand } from '../broker/cli/tenant.ts';
import { registerTokenCommand } from '../broker/cli/token.ts';
import { registerUsageCommand } from '../broker/cli/usage.ts';
import { GpubrokerError, StartupError } from '../lib/errors.ts';
import { registerCloudsCommand } from '../providers/remote/cli.ts';
import { registerSimulateCommand } from '../simulations/cli.ts';
import { registerPlanCommand } from '../solver/cli.ts';

/** Exit status for bad input (usage errors), as documented in the README. */
export const EXIT_USAGE = 2;
/** Exit status for a command that could not run as configured (a start-up failure, a fault). */
export const EXIT_FAILURE = 1;

/** A new `gpubroker` program with every command; commander keeps parse state, so one program per command line. */
export function buildProgram(): Command {
  const program = new Command('gpubroker')
    .description('capacity planner and multi-cloud GPU broker')
    .showHelpAfterError()
    .exitOverride();
  registerPlanCommand(program);
  registerServeCommand(program);
  registerDbCommand(program);
  registerCloudsCommand(program);
  registerRunCommands(program);
  registerLeaseCommand(program);
  registerPolicyCommand(program);
  registerTokenCommand(program);
  registerUsageCommand(program);
  registerInvoiceCommand(program);
  registerCostsCommand(program);
  registerPricesCommand(program);
  registerTenantCommand(program);
  registerSimulateCommand(program);
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
    await buildProgram().parseAsync([...args], { from: 'user' });
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
