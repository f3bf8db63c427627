/** `gpubroker`: runs the command line (bin/cli.ts) and exits with its status. */
import { runGpubroker } from './cli.ts';

const outcome = await runGpubroker(process.argv.slice(2));
if (outcome.exitAtOnce) process.exit(outcome.code);
if (outcome.code !== undefined) process.exitCode = outcome.code;
