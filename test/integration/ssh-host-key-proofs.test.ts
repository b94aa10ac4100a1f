// sshd announces its host keys after login; asking it to prove each one costs the device a
// signature per key for nothing (see orchestrator/ssh/host-key-rotation.ts). Checked in
// sshd's own debug log, with a host that has three keys.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshSession } from '../../orchestrator/ssh/session.ts';
import { connectOptions, type Sshd, startSshd } from '../helpers/sshd.ts';

let sshd: Sshd;

beforeAll(async () => {
  sshd = await startSshd({ extraHostKeyTypes: ['ecdsa', 'rsa'], extraConfig: ['LogLevel DEBUG3'] });
});

afterAll(async () => {
  await sshd?.stop();
});

describe('host keys announced by sshd after login', () => {
  it('are not asked to be proven, and the session works as usual', async () => {
    const session = await SshSession.connect(connectOptions(sshd));
    try {
      expect((await session.exec('echo ok')).stdout).toBe('ok\n');
    } finally {
      await session.close();
    }
    const log = readFileSync(sshd.logFile, 'utf8');
    // sshd did announce them (so the test would see a proof request if one were made)...
    expect(log).toMatch(/hostkeys-00@openssh\.com|notify_hostkeys/);
    // ...and was never asked to sign with them.
    expect(log).not.toContain('hostkeys-prove-00@openssh.com');
  });
});
