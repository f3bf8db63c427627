/**
 * `gpubroker agent` (and `agent-host`): the same command line with the agent's commands only, which bin/gpubroker.js
 * runs from a build of its own (bin/build-cache.js). A build shares what it keeps of a package across every command
 * it holds: built with the server, the agent would load all of zod the server's API uses (its idle memory counts on
 * every GPU machine); alone it loads the small build its protocol needs.
 */
import { AGENT_COMMANDS } from './agent-commands.ts';
import { exitWith, runGpubroker } from './cli.ts';

exitWith(await runGpubroker([AGENT_COMMANDS], process.argv.slice(2)));
