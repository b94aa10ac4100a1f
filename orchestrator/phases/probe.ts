// Runs the read-only probe script on the host (as root through sudo when needed) and parses
// what it prints into validated Facts.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { RemoteCommandError } from '../errors.ts';
import type { Facts } from '../facts/facts.ts';
import { parseFacts } from '../facts/parse.ts';
import { shellQuote } from '../ssh/quote.ts';
import type { SshSession } from '../ssh/session.ts';

const PROBE_PATH = fileURLToPath(new URL('../../remote-payload/probe.sh', import.meta.url));

let probeScript: Promise<string> | undefined;

/** The probe is sent on stdin, so nothing is left behind on the host. */
export async function probeHost(session: SshSession, workDir: string): Promise<Facts> {
  probeScript ??= readFile(PROBE_PATH, 'utf8');
  const script = await probeScript;
  const result = await session.exec(`sh -s -- ${shellQuote(workDir)}`, { stdin: script, sudo: true });
  if (result.exitCode !== 0) {
    throw new RemoteCommandError(
      `probe exited with code ${result.exitCode}: ${result.stderr.trim().split('\n').slice(-3).join(' | ')}`,
      result.exitCode,
      result.stderr,
    );
  }
  return parseFacts(result.stdout);
}
