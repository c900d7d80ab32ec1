// Vitest runs only Keyv's compliance suite (@keyv/test-suite is written for vitest); every other
// spec runs under mocha. `npm test` runs both.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['spec/keyv*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 20_000,
  },
});
