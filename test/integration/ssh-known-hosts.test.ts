// known_hosts handling, checked against OpenSSH's own ssh-keygen: it hashes entries (-H),
// finds them (-F), removes them (-R) and prints fingerprints (-l) the way ssh does.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkHostKey,
  fingerprintSha256,
  formatKnownHostsLine,
  knownKeyTypes,
  parseKnownHosts,
  readKnownHosts,
  recordHostKey,
} from '../../orchestrator/ssh/known-hosts.ts';
import { generateKey } from '../helpers/sshd.ts';

const run = promisify(execFile);

let dir: string;
const keys: Record<string, { pub: string; blob: Buffer; path: string }> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bm-known-hosts-'));
  for (const [name, type] of [
    ['a', 'ed25519'],
    ['b', 'ed25519'],
    ['rsa', 'rsa'],
  ] as const) {
    const { pub, path } = await generateKey(join(dir, name), { type });
    const [t = '', b64 = ''] = pub.split(' ');
    keys[name] = { pub: `${t} ${b64}`, blob: Buffer.from(b64, 'base64'), path };
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('known_hosts', () => {
  it('prints the same SHA256 fingerprint as ssh-keygen -l', async () => {
    const { stdout } = await run('ssh-keygen', ['-lf', `${keys.a!.path}.pub`]);
    expect(stdout.split(' ')[1]).toBe(fingerprintSha256(keys.a!.blob));
  });

  it('matches plain names, comma lists and [host]:port entries, and skips comments and blank lines', () => {
    const text = [
      '# a comment',
      '',
      `device1,10.0.0.1 ${keys.a!.pub}`,
      `[10.0.0.2]:2222 ${keys.a!.pub} with a comment`,
      `   10.0.0.3 ${keys.b!.pub}`,
      'garbage line',
    ].join('\n');
    const entries = parseKnownHosts(text);
    expect(entries.map((e) => e.line)).toEqual([3, 4, 5]);
    expect(checkHostKey(entries, 'device1', 22, keys.a!.blob).status).toBe('match');
    expect(checkHostKey(entries, '10.0.0.1', 22, keys.a!.blob).status).toBe('match');
    expect(checkHostKey(entries, '10.0.0.2', 2222, keys.a!.blob).status).toBe('match');
    expect(checkHostKey(entries, '10.0.0.2', 22, keys.a!.blob).status).toBe('unknown');
    expect(checkHostKey(entries, '10.0.0.1', 2222, keys.a!.blob).status).toBe('unknown');
    expect(checkHostKey(entries, '10.0.0.3', 22, keys.b!.blob).status).toBe('match');
  });

  it('compares host names without regard to case, as ssh does', () => {
    const entries = parseKnownHosts(`Device-1.Example ${keys.a!.pub}`);
    expect(checkHostKey(entries, 'device-1.example', 22, keys.a!.blob).status).toBe('match');
    expect(checkHostKey(entries, 'DEVICE-1.EXAMPLE', 22, keys.a!.blob).status).toBe('match');
  });

  it('honours wildcards and negated patterns', () => {
    const entries = parseKnownHosts(`*.fleet.example,!bad.fleet.example ${keys.a!.pub}`);
    expect(checkHostKey(entries, 'pi-7.fleet.example', 22, keys.a!.blob).status).toBe('match');
    expect(checkHostKey(entries, 'bad.fleet.example', 22, keys.a!.blob).status).toBe('unknown');
  });

  it('finds entries that ssh-keygen -H hashed, for port 22 and for other ports', async () => {
    const file = join(dir, 'hashed');
    await writeFile(file, `device9 ${keys.a!.pub}\n[10.9.9.9]:2200 ${keys.b!.pub}\n`);
    await run('ssh-keygen', ['-H', '-f', file]);
    const text = await readFile(file, 'utf8');
    expect(text).not.toContain('device9');
    expect(text).toMatch(/^\|1\|/);
    const entries = parseKnownHosts(text);
    expect(checkHostKey(entries, 'device9', 22, keys.a!.blob).status).toBe('match');
    expect(checkHostKey(entries, '10.9.9.9', 2200, keys.b!.blob).status).toBe('match');
    expect(checkHostKey(entries, 'device8', 22, keys.a!.blob).status).toBe('unknown');
  });

  it('reports a different key of the same host as changed, with both fingerprints and the line', () => {
    const entries = parseKnownHosts(`# header\ndevice1 ${keys.a!.pub}\n`);
    const check = checkHostKey(entries, 'device1', 22, keys.b!.blob);
    expect(check).toEqual({
      status: 'changed',
      fingerprint: fingerprintSha256(keys.b!.blob),
      knownFingerprints: [fingerprintSha256(keys.a!.blob)],
      lines: [2],
    });
  });

  it('reports a host known only by a key of another type as changed, never as new', () => {
    const entries = parseKnownHosts(`device1 ${keys.rsa!.pub}\n`);
    expect(checkHostKey(entries, 'device1', 22, keys.a!.blob).status).toBe('changed');
    expect(knownKeyTypes(entries, 'device1', 22)).toEqual(['ssh-rsa']);
  });

  it('refuses a key listed under @revoked even when another line accepts it', () => {
    const entries = parseKnownHosts(`device1 ${keys.a!.pub}\n@revoked * ${keys.a!.pub}\n`);
    expect(checkHostKey(entries, 'device1', 22, keys.a!.blob)).toMatchObject({ status: 'revoked', line: 2 });
  });

  it('does not treat @cert-authority lines as host keys', () => {
    const entries = parseKnownHosts(`@cert-authority device1 ${keys.a!.pub}\n`);
    expect(checkHostKey(entries, 'device1', 22, keys.a!.blob).status).toBe('unknown');
  });

  it('writes hashed lines that ssh-keygen -F finds and ssh-keygen -R removes', async () => {
    const file = join(dir, 'written');
    await writeFile(file, `${formatKnownHostsLine('127.0.0.1', 2022, keys.a!.blob)}\n`);
    const found = await run('ssh-keygen', ['-F', '[127.0.0.1]:2022', '-f', file]);
    expect(found.stdout).toContain(keys.a!.pub.split(' ')[1]);
    expect(await readFile(file, 'utf8')).not.toContain('127.0.0.1');
    await run('ssh-keygen', ['-R', '[127.0.0.1]:2022', '-f', file]);
    expect(parseKnownHosts(await readFile(file, 'utf8'))).toEqual([]);
  });

  it('writes plain lines when asked, in the [host]:port form ssh uses', () => {
    expect(formatKnownHostsLine('10.0.0.5', 2222, keys.a!.blob, { hashed: false })).toBe(
      `[10.0.0.5]:2222 ${keys.a!.pub}`,
    );
    expect(formatKnownHostsLine('10.0.0.5', 22, keys.a!.blob, { hashed: false })).toBe(
      `10.0.0.5 ${keys.a!.pub}`,
    );
  });

  it('records a host seen by many connections at once exactly once', async () => {
    const file = join(dir, 'concurrent');
    const results = await Promise.all(
      Array.from({ length: 10 }, () => recordHostKey(file, '10.1.1.1', 22, keys.a!.blob)),
    );
    expect(results.filter((r) => r.status === 'unknown')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'match')).toHaveLength(9);
    expect(await readKnownHosts(file)).toHaveLength(1);
  });

  it('appends on a new line even when the file does not end with one', async () => {
    const file = join(dir, 'no-newline');
    await writeFile(file, `device1 ${keys.a!.pub}`);
    await recordHostKey(file, 'device2', 22, keys.b!.blob, { hashed: false });
    const entries = await readKnownHosts(file);
    expect(entries).toHaveLength(2);
    expect(checkHostKey(entries, 'device2', 22, keys.b!.blob).status).toBe('match');
  });

  it('does not record a key for a host that already has a different one', async () => {
    const file = join(dir, 'no-overwrite');
    await writeFile(file, `device1 ${keys.a!.pub}\n`);
    const check = await recordHostKey(file, 'device1', 22, keys.b!.blob);
    expect(check.status).toBe('changed');
    expect(await readKnownHosts(file)).toHaveLength(1);
  });

  it('treats a missing file as empty', async () => {
    expect(await readKnownHosts(join(dir, 'does-not-exist'))).toEqual([]);
  });
});
