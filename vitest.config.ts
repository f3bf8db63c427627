import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    // `*.e2e.test.ts` run with `npm run test:e2e` (vitest.e2e.config.ts).
    exclude: ['node_modules/**', 'tmp/**', '**/*.e2e.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // One worker process runs file after file (no fresh process and module graph per file: about half of the run
    // on two cores). Test files must leave the process as they found it: environment, working directory, servers.
    isolate: false,
    // Two workers even on two cores (vitest's default there is one): the slow files mostly wait on child
    // processes, containers and the clock, so two overlap well (all files: 338 s -> 219 s on a quiet 2-core machine).
    maxWorkers: Math.max(2, availableParallelism() - 1),
  },
});
