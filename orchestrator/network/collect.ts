// Reads the old OS's network configuration files (remote-payload/network-collect.sh, run as
// root, sent on stdin so nothing is left on the host) into memory on the laptop. The files
// hold Wi-Fi keys: they are never logged, never part of the facts or a report, and only the
// keyfiles made from them leave this process (uploaded 0600 into the working directory).
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { RemoteCommandError } from '../errors.ts';
import type { SshSession } from '../ssh/session.ts';
import type { SourceFile } from './model.ts';

const SCRIPT_PATH = fileURLToPath(new URL('../../remote-payload/network-collect.sh', import.meta.url));
let script: Promise<string> | undefined;

/** The files in the collection script's output; throws on a truncated or garbled output. */
export function parseNetworkCollection(text: string): { files: SourceFile[]; skipped: string[] } {
  const files: SourceFile[] = [];
  const skipped: string[] = [];
  const lines = text.split('\n');
  let ended = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const [kind, path, a, b] = line.split('\t');
    if (kind === 'end' && path === 'ok') {
      ended = true;
      break;
    }
    if (kind === 'skipped' && path) {
      skipped.push(`${path}: ${a ?? 'skipped'}`);
      continue;
    }
    if (kind !== 'file' || !path || !a || !b) throw new Error(`network collection: unexpected line ${i + 1}`);
    const body: string[] = [];
    while (++i < lines.length && lines[i] !== 'end-file') body.push(lines[i]!);
    if (i >= lines.length) throw new Error(`network collection: ${path} is cut short`);
    const data = b === 'hex' ? Buffer.from(body.join(''), 'hex') : Buffer.from(body.join(''), 'base64');
    if (data.length !== Number(a))
      throw new Error(`network collection: ${path} arrived with ${data.length} of ${a} bytes`);
    files.push({ path, data });
  }
  if (!ended) throw new Error('network collection: the output is truncated (no end line)');
  return { files, skipped };
}

/** Runs the collection on the host as root and returns the files, in memory. */
export async function collectNetworkSources(
  session: SshSession,
): Promise<{ files: SourceFile[]; skipped: string[] }> {
  script ??= readFile(SCRIPT_PATH, 'utf8');
  const result = await session.exec('sh -s', { stdin: await script, sudo: true });
  if (result.exitCode !== 0) {
    // stderr of cat/base64 names paths at most, never content
    throw new RemoteCommandError(
      `reading the network configuration exited with code ${result.exitCode}: ${result.stderr.trim().split('\n').slice(-2).join(' | ')}`,
      result.exitCode,
      result.stderr,
    );
  }
  return parseNetworkCollection(result.stdout);
}
