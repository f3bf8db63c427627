import { defineConfig } from 'vitest/config';

/** `npm run test:e2e`: the slow end-to-end suites (real CLI processes, crash loops), kept out of `npm test`. */
export default defineConfig({
  test: {
    include: ['**/*.e2e.test.ts'],
    exclude: ['node_modules/**', 'tmp/**'],
    testTimeout: 180_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
