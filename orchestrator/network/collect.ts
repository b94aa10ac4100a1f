// Reads the old OS's network configuration files (remote-payload/network-collect.sh, run as
// root in the probe's round trip, see phases/probe.ts) into memory on the laptop. The files
// hold Wi-Fi keys: they are never logged, never part of the facts or a report, and only the
// keyfiles made from them leave this process (uploaded 0600 into the working directory).
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { SourceFile } from './model.ts';

const SCRIPT_PATH = fileURLToPath(new URL('../../remote-payload/network-collect.sh', import.meta.url));
let script: Promise<string> | undefined;

/** What the collection read: the files (in memory only), and those it left out with why. */
export interface NetworkCollection {
  files: SourceFile[];
  skipped: string[];
}

/** The files in the collection script's output; throws on a truncated or garbled output. */
export function parseNetworkCollection(text: string): NetworkCollection {
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

/** The collection script (remote-payload/network-collect.sh), sent on stdin to `sh -s` as root. */
export function networkCollectionScript(): Promise<string> {
  script ??= readFile(SCRIPT_PATH, 'utf8');
  return script;
}
