/**
 * The agent's commands as a command table's entry: in every command (bin/commands.ts) and alone in the agent's own
 * build (bin/agent.ts), which must not import the whole table (its imports would be built into the agent).
 */
import type { CommandTable } from './cli.ts';

export const AGENT_COMMANDS: CommandTable[number] = [
  ['agent', 'agent-host'],
  async () => (await import('../agent/cli.ts')).registerAgentCommand,
];
