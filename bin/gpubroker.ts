/** `gpubroker`: runs the command line (bin/cli.ts) with every command and exits with its status. */
import { exitWith, runGpubroker } from './cli.ts';
import { COMMANDS } from './commands.ts';

exitWith(await runGpubroker(COMMANDS, process.argv.slice(2)));
