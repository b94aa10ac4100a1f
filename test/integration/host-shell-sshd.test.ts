// Which shell answers, asked of a real OpenSSH sshd on loopback: login shells dash, bash and
// rbash are POSIX and go the Linux way; a login shell that is none of sh, cmd.exe and
// PowerShell (tclsh here) is a clear connect error, not a half-working session.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteCommandError } from '../../orchestrator/errors.ts';
import { hostOsOf, readBootIdOf } from '../../orchestrator/phases/host-os.ts';
import { parseShellProbe, SHELL_PROBE_COMMAND } from '../../orchestrator/ssh/host-shell.ts';
import { SshSession } from '../../orchestrator/ssh/session.ts';
import {
  fleetFlags,
  nativeInventory,
  readHostReports,
  runCli,
  startFleetHosts,
} from '../helpers/fleet-hosts.ts';
import { ensureTestUser, removeTestUser, type Sshd, startSshd } from '../helpers/sshd.ts';

const run = promisify(execFile);

let sshd: Sshd;
let dir: string;
let knownHostsFile: string;

const SHELLS: Array<{ user: string; shell: string }> = [
  { user: 'bm-shell-dash', shell: '/bin/dash' },
  { user: 'bm-shell-bash', shell: '/bin/bash' },
  { user: 'bm-shell-rbash', shell: '/bin/rbash' },
  { user: 'bm-shell-tcl', shell: '/usr/bin/tclsh' },
].filter((s) => existsSync(s.shell));

beforeAll(async () => {
  sshd = await startSshd();
  dir = await mkdtemp(join(tmpdir(), 'bm-host-shell-'));
  knownHostsFile = join(dir, 'known_hosts');
  await writeFile(knownHostsFile, `${sshd.knownHostsLine}\n`);
  for (const s of SHELLS) {
    await ensureTestUser({ name: s.user });
    await run('usermod', ['-s', s.shell, s.user]);
  }
});

afterAll(async () => {
  await sshd?.stop();
  for (const s of SHELLS) await removeTestUser(s.user);
  if (dir) await rm(dir, { recursive: true, force: true });
});

function connect(username: string, log?: (line: string) => void): Promise<SshSession> {
  return SshSession.connect({
    host: '127.0.0.1',
    port: sshd.port,
    username,
    identityFiles: [sshd.clientKeyPath],
    agentSocket: null,
    knownHostsFile,
    ...(log ? { log } : {}),
  });
}

describe('shell detection over a real sshd', () => {
  it('asks which shell it is before anything else, and knows root by its name without asking for the uid', async () => {
    const sent: string[] = [];
    const s = await connect('root', (line) => sent.push(line));
    try {
      expect(sent).toEqual([SHELL_PROBE_COMMAND]);
      expect(s.shell).toBe('posix');
      expect(s.isRoot).toBe(true);
      expect(hostOsOf(s.shell)).toBe('linux');
    } finally {
      await s.close();
    }
  });

  for (const { user, shell } of SHELLS.filter((x) => !x.shell.endsWith('tclsh'))) {
    it(`finds a POSIX shell for a user whose login shell is ${shell}, learns the uid, and the probe leaves no error output`, async () => {
      const sent: string[] = [];
      const s = await connect(user, (line) => sent.push(line));
      try {
        expect(sent).toEqual([SHELL_PROBE_COMMAND, 'id -u']);
        expect(s.shell).toBe('posix');
        expect(s.isRoot).toBe(false);
        const r = await s.exec(SHELL_PROBE_COMMAND);
        expect(r).toMatchObject({ exitCode: 0, stdout: 'bm-shell %OS%\n', stderr: '' });
        expect(parseShellProbe(r).kind).toBe('posix');
        console.log(`shell probe through ${shell} on loopback: ${r.durationMs} ms`);
      } finally {
        await s.close();
      }
    });
  }

  it('reads the boot id of a Linux host the way verify compares it', async () => {
    const s = await connect('root');
    try {
      const id = await readBootIdOf(s);
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(id).toBe((await s.exec('cat /proc/sys/kernel/random/boot_id')).stdout.trim());
    } finally {
      await s.close();
    }
  });

  it.runIf(existsSync('/usr/bin/tclsh'))(
    'refuses a login shell that is none of sh, cmd.exe and PowerShell with what it answered',
    async () => {
      const err = await connect('bm-shell-tcl').then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(RemoteCommandError);
      expect((err as Error).message).toMatch(
        /cannot tell which shell runs commands on bm-shell-tcl@127\.0\.0\.1/,
      );
      expect((err as Error).message).toMatch(/must be sh-compatible \(Linux\) or cmd\.exe\/PowerShell/);
    },
  );
});

describe('routing a real sshd host through the CLI', () => {
  it('takes the Linux pipeline for a POSIX host: Linux facts in the report, no Windows facts', async () => {
    const fleet = await startFleetHosts([{ name: 'linux-1' }]);
    try {
      const inventory = join(dir, 'routing-inventory.yml');
      await writeFile(inventory, nativeInventory(fleet, {}));
      const runsDir = join(dir, 'routing-runs');
      const r = await runCli(['check', '-i', inventory, ...fleetFlags(fleet, runsDir)], runsDir);
      const report = readHostReports(r.runDir!).get('linux-1')!;
      expect(report.phases).toEqual(
        expect.arrayContaining([expect.objectContaining({ name: 'probe', ok: true })]),
      );
      expect((report.facts as { kernel?: { release?: string } } | null)?.kernel?.release).toBeTruthy();
      expect(report.windowsFacts).toBeUndefined();
      expect(report.bootManager).not.toBe('windows');
    } finally {
      await fleet.stop();
    }
  });
});
