/**
 * `gpubroker clouds serve`: the simulated clouds (AWS, GCP, Azure) in their own process, on HTTP, so that brokers
 * (`gpubroker serve --providers http://127.0.0.1:8790`) can crash, restart and run side by side against one
 * inventory, as they would against real clouds.
 */
import type { Command } from 'commander';
import { parseIntegerIn } from '../../lib/cli-args.ts';
import { RealClock } from '../../lib/clock.ts';
import { loadSimScenario, type SimScenarioInput } from '../sim/scenario.ts';
import { createSimClouds } from '../sim/sim-clouds.ts';
import { serveProviders } from './provider-server.ts';

export function registerCloudsCommand(program: Command): void {
  const clouds = program.command('clouds').description('simulated clouds as a service of their own');
  clouds
    .command('serve')
    .description('serve the simulated clouds on HTTP for brokers started with --providers URL')
    .option('--port <port>', 'port (0: any free port)', '8790')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--scenario <file>', 'simulated clouds scenario (.json or .ts)')
    .option('--seed <n>', 'seed of the clouds (delays, failures, spot replay)')
    .action(async (flags: { port: string; host: string; scenario?: string; seed?: string }) => {
      const port = parseIntegerIn('--port', flags.port, 0, 65_535);
      let scenario: SimScenarioInput | undefined = flags.scenario
        ? await loadSimScenario(flags.scenario)
        : undefined;
      if (flags.seed !== undefined)
        scenario = { ...(scenario ?? {}), seed: parseIntegerIn('--seed', flags.seed, 0, 2 ** 31 - 1) };
      const clock = new RealClock();
      const providers = createSimClouds({ clock, ...(scenario ? { scenario } : {}) });
      const server = await serveProviders(providers, { port, host: flags.host });
      // Handlers first: whoever reads the banner may signal at once.
      const shutdown = async () => {
        await server.close();
        for (const provider of providers) await provider.close();
        process.exit(0);
      };
      process.once('SIGINT', () => void shutdown());
      process.once('SIGTERM', () => void shutdown());
      process.stdout.write(
        `simulated clouds listening on ${server.url} (${providers.map((p) => p.vendor).join(', ')})\n` +
          `  gpubroker serve --providers ${server.url}\n`,
      );
    });
}
