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
const EXIT_USAGE = 2;

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

/** Exit status for a command that could not run as configured (a start-up failure, a fault). */
const EXIT_FAILURE = 1;
/** A user sees one line; `GPUBROKER_LOG=debug` adds the stack for whoever debugs gpubroker itself. */
const debug = process.env.GPUBROKER_LOG === 'debug';

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode === 0 ? 0 : EXIT_USAGE;
  } else {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    process.stderr.write(`gpubroker: ${message}\n`);
    if (debug && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    if (error instanceof StartupError) {
      // Whatever start-up left waiting (a resolver, a socket to a silent server) must not keep the process alive.
      process.exit(EXIT_FAILURE);
    }
    process.exitCode = error instanceof GpubrokerError ? EXIT_USAGE : EXIT_FAILURE;
  }
}
