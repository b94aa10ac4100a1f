// The run directory: one per run, named for when it started and what it does, e.g.
// runs/2026-11-26T04-50-00Z-run. It holds the journal, the events, and failed-hosts.txt.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

/** `2026-11-26T04-50-00Z-run`: sortable, and free of the colons some filesystems refuse. */
export function runDirName(startedAt: Date, command: 'check' | 'run'): string {
  const stamp = startedAt
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replaceAll(':', '-');
  return `${stamp}-${command}`;
}

/** Creates a fresh run directory under `baseDir`; a second run in the same second gets `-2`. */
export function createRunDir(baseDir: string, command: 'check' | 'run', startedAt = new Date()): string {
  mkdirSync(baseDir, { recursive: true });
  const name = runDirName(startedAt, command);
  for (let n = 1; ; n++) {
    const dir = join(baseDir, n === 1 ? name : `${name}-${n}`);
    try {
      mkdirSync(dir);
      return dir;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}
