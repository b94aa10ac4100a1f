// The probe and the network collection share one SSH channel and one shell on the host, and
// their outputs never mix: the facts hold no byte of the network files.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DirLocation } from '../../orchestrator/facts/facts.ts';
import { parseFacts } from '../../orchestrator/facts/parse.ts';
import { probeHost, splitProbeOutput } from '../../orchestrator/phases/probe.ts';
import { SshSession } from '../../orchestrator/ssh/session.ts';
import { connectOptions, type Sshd, startSshd } from '../helpers/sshd.ts';

let sshd: Sshd;
let session: SshSession;
const logged: string[] = [];
// a network file of the old OS, in a place the collection reads, with a recognisable secret
const secret = `psk-${randomBytes(8).toString('hex')}`;
const networkFile = `/etc/systemd/network/99-bm-probe-test-${process.pid}.network`;
const networkText = `[Match]\nName=eth9\n\n[Network]\nDHCP=yes\n# ${secret}\n`;

beforeAll(async () => {
  mkdirSync('/etc/systemd/network', { recursive: true });
  await writeFile(networkFile, networkText, { mode: 0o600 });
  sshd = await startSshd();
  session = await SshSession.connect(connectOptions(sshd, { log: (line) => logged.push(line) }));
});

afterAll(async () => {
  await session?.close();
  await sshd?.stop();
  await rm(networkFile, { force: true });
});

describe('probing a host with its network files', () => {
  it('reads the facts and the network files in one command, and keeps the files out of the facts', async () => {
    logged.length = 0;
    const withNetwork = await probeHost(session, '/var/tmp/bm-work', { collectNetwork: true });
    expect(logged).toHaveLength(1);
    const alone = await probeHost(session, '/var/tmp/bm-work');
    expect(alone.network).toBeUndefined();
    expect(withNetwork.facts.hostname).toBe(alone.facts.hostname);
    expect(withNetwork.facts.blockDevices).toEqual(alone.facts.blockDevices);
    // (free space moves while other tests write)
    const place = (d: DirLocation | undefined) => d && { ...d, freeBytes: 0 };
    expect(place(withNetwork.facts.workDir)).toEqual(place(alone.facts.workDir));
    expect(place(withNetwork.facts.rootDir)).toEqual(place(alone.facts.rootDir));

    const collected = withNetwork.network!();
    const file = collected.files.find((f) => f.path === networkFile);
    expect(file?.data.toString('utf8')).toBe(networkText);
    expect(JSON.stringify(withNetwork.facts)).not.toContain(secret);
  });
});

describe('splitProbeOutput', () => {
  const probeOut = 'probe_version\t1\nhostname\tpi\nend\tok\n';
  const collection = `file\t/etc/x\t3\tbase64\n${Buffer.from('abc').toString('base64')}\nend-file\nend\tok\n`;

  it('separates the probe output from the collection at the marker line', () => {
    const { probe, network } = splitProbeOutput(`${probeOut}\n@@balena-migrate-network\n${collection}`);
    expect(probe).toBe(probeOut);
    expect(network).toBe(collection);
  });

  it('hands a probe cut short to the facts parser as truncated, without the collection', () => {
    const { probe, network } = splitProbeOutput(
      `probe_version\t1\nhostn\n@@balena-migrate-network\n${collection}`,
    );
    expect(network).toBe(collection);
    expect(probe).not.toContain('base64');
    expect(() => parseFacts(probe)).toThrow(/line 2/);
  });

  it('reports a collection that never started as missing, not as empty', async () => {
    const { probe, network } = splitProbeOutput(probeOut);
    expect(probe).toBe(probeOut);
    expect(network).toBeNull();
  });
});
