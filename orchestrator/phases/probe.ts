// Runs the read-only probe script on the host (as root through sudo when needed) and parses
// what it prints into validated Facts. When the plan will need them, the old OS's network
// files are read in the same round trip (one SSH channel and one shell per host, not two:
// at fleet scale every channel is a process start on the device).
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { RemoteCommandError } from '../errors.ts';
import type { Facts } from '../facts/facts.ts';
import { parseFacts } from '../facts/parse.ts';
import {
  type NetworkCollection,
  networkCollectionScript,
  parseNetworkCollection,
} from '../network/collect.ts';
import { shellQuote } from '../ssh/quote.ts';
import type { SshSession } from '../ssh/session.ts';

const PROBE_PATH = fileURLToPath(new URL('../../remote-payload/probe.sh', import.meta.url));

/** Printed between the probe's output and the network collection's. */
export const NETWORK_MARKER = '@@balena-migrate-network';

let probeScript: Promise<string> | undefined;

export interface ProbeResult {
  facts: Facts;
  /**
   * The network collection, when asked for: returns the files or throws why they could not be
   * read (a failure there is the plan's concern, not the probe's). Holds Wi-Fi keys: never log it.
   */
  network?: () => NetworkCollection;
}

/** The probe (and the collection) is sent on stdin, so nothing is left behind on the host. */
export async function probeHost(
  session: SshSession,
  workDir: string,
  opts: { collectNetwork?: boolean } = {},
): Promise<ProbeResult> {
  probeScript ??= readFile(PROBE_PATH, 'utf8');
  let script = await probeScript;
  if (opts.collectNetwork) {
    // The shell reads on after the probe's last line: the collection runs next, and the exit
    // status stays the probe's.
    script +=
      `\nbm_probe_status=$?\nprintf '\\n%s\\n' ${shellQuote(NETWORK_MARKER)}\n` +
      `${await networkCollectionScript()}\nexit "$bm_probe_status"\n`;
  }
  const result = await session.exec(`sh -s -- ${shellQuote(workDir)}`, { stdin: script, sudo: true });
  if (result.exitCode !== 0) {
    throw new RemoteCommandError(
      `probe exited with code ${result.exitCode}: ${result.stderr.trim().split('\n').slice(-3).join(' | ')}`,
      result.exitCode,
      result.stderr,
    );
  }
  if (!opts.collectNetwork) return { facts: parseFacts(result.stdout) };
  const { probe, network } = splitProbeOutput(result.stdout);
  return { facts: parseFacts(probe), network: () => parseCollected(network) };
}

/** The probe's part and the collection's part (null: the collection never started). */
export function splitProbeOutput(stdout: string): { probe: string; network: string | null } {
  const marker = `\n${NETWORK_MARKER}\n`;
  const at = stdout.lastIndexOf(marker);
  if (at < 0) return { probe: stdout, network: null };
  return { probe: stdout.slice(0, at), network: stdout.slice(at + marker.length) };
}

function parseCollected(text: string | null): NetworkCollection {
  if (text === null) throw new Error('network collection: it did not run (the probe output has no marker)');
  return parseNetworkCollection(text);
}
