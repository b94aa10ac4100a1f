// V8 settings for what this process mostly does: move images through ssh2. Every 32 KiB of
// an upload makes ssh2 allocate two short-lived Buffers outside the JS heap (the SFTP request,
// then each SSH packet), and V8 answers that churn of external memory with one incremental
// marking cycle after another: a third of the CPU of an upload went to them (`npm run bench`,
// `--trace-gc`: 64 mark-compacts for 768 MiB pushed, 7 without incremental marking). The JS
// heap stays small (~10 MiB), so a full collection done at once is a short pause, and far
// fewer of them run. Set at run time (not a node flag) so that `node bin/balena-migrate.js`,
// the npm scripts and the benchmarks all run the same way.
import { setFlagsFromString } from 'node:v8';

export function tuneV8ForTransfers(): void {
  setFlagsFromString('--no-incremental-marking');
}
