/**
 * `gpubroker clouds serve`: the simulated clouds (AWS, GCP, Azure) in their own process, on HTTP, so that brokers
 * (`gpubroker serve --providers http://127.0.0.1:8790`) can crash, restart and run side by side against one
 * inventory, as they would against real clouds. With `--state FILE` (or `--data-dir DIR`: `DIR/sim-clouds.json`)
 * the clouds themselves outlive a crash of their process: they start again from the file, with the time that
 * passed caught up by their rules (see providers/sim/sim-state.ts).
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { parseIntegerIn } from '../../lib/cli-args.ts';
import { RealClock } from '../../lib/clock.ts';
import { ValidationError } from '../../lib/errors.ts';
import { loadSimScenario, type SimScenarioInput } from '../sim/scenario.ts';
import { createSimClouds, SIM_CLOUDS_FILE } from '../sim/sim-clouds.ts';
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
    .option(
      '--state <file>',
      'keep the clouds in this file, so that they survive a crash (default: in memory)',
    )
    .option('--data-dir <dir>', `keep the clouds in DIR/${SIM_CLOUDS_FILE}`)
    .action(
      async (flags: {
        port: string;
        host: string;
        scenario?: string;
        seed?: string;
        state?: string;
        dataDir?: string;
      }) => {
        const port = parseIntegerIn('--port', flags.port, 0, 65_535);
        if (flags.state !== undefined && flags.dataDir !== undefined)
          throw new ValidationError('--state', 'give --state or --data-dir, not both');
        const stateFile =
          flags.state ?? (flags.dataDir === undefined ? undefined : join(flags.dataDir, SIM_CLOUDS_FILE));
        if (stateFile) mkdirSync(dirname(stateFile), { recursive: true });
        let scenario: SimScenarioInput | undefined = flags.scenario
          ? await loadSimScenario(flags.scenario)
          : undefined;
        if (flags.seed !== undefined)
          scenario = { ...(scenario ?? {}), seed: parseIntegerIn('--seed', flags.seed, 0, 2 ** 31 - 1) };
        const clock = new RealClock();
        const providers = createSimClouds({
          clock,
          ...(scenario ? { scenario } : {}),
          ...(stateFile ? { stateFile } : {}),
        });
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
            (stateFile ? `  state: ${stateFile}\n` : '') +
            `  gpubroker serve --providers ${server.url}\n`,
        );
      },
    );
}
