/**
 * The flags of every command that talks to a running broker, `--url` and `--token`: apart from the client
 * (client-options.ts), so that a command registers them without loading the SDK (the agent's idle memory).
 */
import type { Command } from 'commander';

export interface ClientFlags {
  url?: string;
  token?: string;
}

/** Adds `--url` and `--token` to a command. */
export function withClientOptions(command: Command): Command {
  return command
    .option('--url <url>', 'the broker (default: GPUBROKER_URL, then http://127.0.0.1:8787)')
    .option(
      '--token <token>',
      'API token (default: GPUBROKER_TOKEN, then .gpubroker/operator-token in this directory)',
    );
}
