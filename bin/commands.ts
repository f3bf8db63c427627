/**
 * Every `gpubroker` command, in the order help lists them. A command's module loads only when its command runs:
 * `serve` does not load the charts of `simulate` or the solver's CLI (start-up time is restart time). Help, no
 * command and an unknown command load them all.
 */
import { AGENT_COMMANDS } from './agent-commands.ts';
import type { CommandTable } from './cli.ts';

export const COMMANDS: CommandTable = [
  [['plan'], async () => (await import('../broker/cli/plan-what-if.ts')).registerPlanCommand],
  [['serve'], async () => (await import('../broker/cli/serve.ts')).registerServeCommand],
  AGENT_COMMANDS,
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
