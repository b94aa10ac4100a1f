// Telling sh, cmd.exe and PowerShell apart by the first command after connecting.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostOsOf } from '../../orchestrator/phases/host-os.ts';
import { type HostShell, parseShellProbe, SHELL_PROBE_COMMAND } from '../../orchestrator/ssh/host-shell.ts';

interface Case {
  name: string;
  exitCode: number;
  stdout: string;
  stderr: string;
  expect: HostShell | 'unknown';
}
const { cases } = JSON.parse(
  readFileSync(join(import.meta.dirname, '../fixtures/windows/shell-probe/outputs.json'), 'utf8'),
) as { cases: Case[] };

describe('the shell probe', () => {
  it.each(cases)('reads "$name" as $expect', (c) => {
    expect(parseShellProbe(c).kind).toBe(c.expect);
  });

  it('names the PowerShell edition and the value cmd.exe gave %OS%', () => {
    const ps = cases.find((c) => c.name.startsWith('Windows PowerShell 5.1'))!;
    expect(parseShellProbe(ps).detail).toBe('PowerShell (Desktop)');
    const cmd = cases.find((c) => c.expect === 'cmd')!;
    expect(parseShellProbe(cmd).detail).toBe('cmd.exe (OS=Windows_NT)');
  });

  it('says what the host answered when it is none of the three', () => {
    const r = parseShellProbe({ exitCode: 1, stdout: '', stderr: 'true: Undefined variable.\n' });
    expect(r.kind).toBe('unknown');
    expect(r.detail).toContain('exit 1');
    expect(r.detail).toContain('true: Undefined variable.');
  });

  it('has no quote, redirection or separator that one of the shells would treat differently', () => {
    // quotes survive or vanish depending on how Windows' sshd hands the line over; ; & | < > ( )
    // and backticks are syntax in at least one of the three shells
    expect(SHELL_PROBE_COMMAND).not.toMatch(/["'`;&|<>()]/);
  });

  for (const shell of ['/bin/sh', '/bin/dash', '/bin/bash', '/bin/rbash']) {
    it.runIf(existsSync(shell))(`runs silently in ${shell} and is read as POSIX`, () => {
      const out = execFileSync(shell, ['-c', SHELL_PROBE_COMMAND], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: '/usr/bin:/bin' },
      });
      expect(out).toBe('bm-shell %OS%\n');
      expect(parseShellProbe({ exitCode: 0, stdout: out, stderr: '' }).kind).toBe('posix');
    });
  }
});

describe('routing by shell', () => {
  it('sends sh to the Linux pipeline and cmd.exe and PowerShell to the Windows one', () => {
    expect(hostOsOf('posix')).toBe('linux');
    expect(hostOsOf('cmd')).toBe('windows');
    expect(hostOsOf('powershell')).toBe('windows');
  });
});
