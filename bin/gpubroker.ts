import { Command, CommanderError } from 'commander';
import { registerCostsCommand } from '../broker/cli/costs.ts';
import { registerInvoiceCommand } from '../broker/cli/invoice.ts';
import { registerLeaseCommand } from '../broker/cli/lease.ts';
import { registerPolicyCommand } from '../broker/cli/policy.ts';
import { registerPricesCommand } from '../broker/cli/prices.ts';
import { registerRunCommands } from '../broker/cli/run.ts';
import { registerServeCommand } from '../broker/cli/serve.ts';
import { registerTenantCommand } from '../broker/cli/tenant.ts';
import { registerTokenCommand } from '../broker/cli/token.ts';
import { registerUsageCommand } from '../broker/cli/usage.ts';
import { GpubrokerError } from '../lib/errors.ts';
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

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode === 0 ? 0 : EXIT_USAGE;
  } else if (error instanceof GpubrokerError) {
    process.stderr.write(`gpubroker: ${error.message}\n`);
    process.exitCode = EXIT_USAGE;
  } else {
    process.stderr.write(`gpubroker: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  }
}
