import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    // `*.e2e.test.ts` run with `npm run test:e2e` (vitest.e2e.config.ts).
    exclude: ['node_modules/**', 'tmp/**', '**/*.e2e.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
