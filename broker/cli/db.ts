/**
 * `gpubroker db check [--data-dir DIR] [--json]`: is a data directory sound? Read-only: it opens nothing and
 * writes nothing, so it is safe on a damaged store and beside a running broker. Exit 0 when the directory is
 * sound or fresh (`serve` would create it), 1 when it is damaged.
 */
import type { Command } from 'commander';
import { checkDataDir } from '../db/data-dir-check.ts';
import { lockHolder } from '../db/data-dir-lock.ts';

export function registerDbCommand(program: Command): void {
  const db = program.command('db').description('the broker’s data directory');
  db.command('check')
    .description('say whether a data directory is sound (read-only)')
    .option('--data-dir <dir>', 'the directory `serve --data-dir` uses', '.gpubroker')
    .option('--json', 'print the report as JSON')
    .action((flags: { dataDir: string; json?: boolean }) => {
      const holder = lockHolder(flags.dataDir);
      const report = checkDataDir(flags.dataDir, { pglite: !process.env.DATABASE_URL });
      if (flags.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else {
        const verdict = {
          fresh: `${flags.dataDir}: empty or absent; \`gpubroker serve\` creates a new store there`,
          sound: `${flags.dataDir}: sound`,
          damaged: `${flags.dataDir}: damaged; \`gpubroker serve\` refuses to start on it. Restore it from a backup or move it away`,
        }[report.verdict];
        const lines = [
          verdict,
          ...report.problems.map((problem) => `  problem: ${problem}`),
          ...report.facts.map((fact) => `  ${fact}`),
          `  ${holder === undefined ? 'no broker runs on it' : `in use by a broker (pid ${holder})`}`,
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      if (report.verdict === 'damaged') process.exitCode = 1;
    });
}
