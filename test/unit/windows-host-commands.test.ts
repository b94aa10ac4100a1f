// The Windows pipeline's own PowerShell commands (work dir, boot id, restart, stage2 log) and
// the readers of what they print, against outputs in the form Windows PowerShell 5.1 prints.
import { describe, expect, it } from 'vitest';
import {
  applyVerdict,
  DEFAULT_WINDOWS_WORK_DIR,
  parseWindowsBootId,
  parseWindowsStage2Log,
  readablePowerShellError,
  windowsBootIdCommand,
  windowsPrepareWorkDirCommand,
  windowsReadStage2LogCommand,
  windowsRebootCommand,
  windowsWorkDir,
} from '../../orchestrator/platform/windows/host-commands.ts';
import { CMD_LINE_LIMIT, psQuote } from '../../orchestrator/platform/windows/ps-quote.ts';
import { parseWindowsApplyState } from '../../orchestrator/platform/windows/render.ts';
import { scriptOf } from '../fixtures/windows/ps-command.ts';
import { checkBalanced } from '../fixtures/windows/ps-syntax.ts';

const HOSTILE = 'C:\\bm \' $(Remove-Item C:\\) `" ’ %PATH%';

describe('the Windows work dir', () => {
  it('is C:\\balena-migrate when the configured one is a POSIX path such as the default', () => {
    expect(windowsWorkDir('/var/tmp/balena-migrate')).toBe(DEFAULT_WINDOWS_WORK_DIR);
    expect(DEFAULT_WINDOWS_WORK_DIR).toBe('C:\\balena-migrate');
  });

  it('is taken as it is when it is a Windows path, with forward slashes turned', () => {
    expect(windowsWorkDir('D:\\migrate\\work\\')).toBe('D:\\migrate\\work');
    expect(windowsWorkDir('D:/migrate/work')).toBe('D:\\migrate\\work');
  });
});

describe('creating the work dir', () => {
  const script = scriptOf(windowsPrepareWorkDirCommand(HOSTILE));

  it('passes the path as one single-quoted PowerShell string, whatever it holds', () => {
    expect(script).toContain(`$W = ${psQuote(HOSTILE)}`);
    checkBalanced(script);
  });

  it('gives it an ACL of Administrators and SYSTEM only, by SID, inherited by its files', () => {
    expect(script).toContain(
      "Invoke-BmNative { icacls.exe $W /inheritance:r /grant:r '*S-1-5-32-544:(OI)(CI)F' '*S-1-5-18:(OI)(CI)F' }",
    );
    expect(script).toMatch(/if \(\$LASTEXITCODE -ne 0\) \{ .*exit 1 \}/);
  });
});

describe('every command of the pipeline', () => {
  const commands = {
    prepare: windowsPrepareWorkDirCommand('C:\\balena-migrate'),
    bootId: windowsBootIdCommand(),
    reboot: windowsRebootCommand(),
    log: windowsReadStage2LogCommand('C:\\balena-migrate', 'stage2.log'),
  };
  it.each(Object.entries(commands))(
    '%s is powershell.exe with base64 only, short enough for cmd.exe, balanced',
    (_, cmd) => {
      expect(cmd.command.length).toBeLessThanOrEqual(CMD_LINE_LIMIT);
      expect(cmd.stdin).toBeUndefined();
      const script = scriptOf(cmd);
      expect(script).toContain("$ErrorActionPreference = 'Stop'");
      // native programs never run under Stop with 2>&1 (5.1 would throw on their first stderr line)
      expect(script.replace(/function Invoke-BmNative.*\n/, '')).not.toMatch(/2>&1/);
      checkBalanced(script);
    },
  );
});

describe('the boot id of Windows', () => {
  it('is the last boot time in ticks, read from a CRLF line', () => {
    expect(scriptOf(windowsBootIdCommand())).toContain('LastBootUpTime.ToUniversalTime()');
    expect(parseWindowsBootId('boot 638679859123456789\r\n')).toBe('windows-boot-638679859123456789');
  });

  it('is null when the command printed something else', () => {
    expect(parseWindowsBootId('')).toBeNull();
    expect(parseWindowsBootId('Get-CimInstance : Access denied\r\n')).toBeNull();
  });
});

describe('the restart', () => {
  it('is a restart (not a shutdown, which Fast Startup would turn into hibernation) after 5 s', () => {
    const script = scriptOf(windowsRebootCommand());
    expect(script).toContain(
      "Invoke-BmNative { shutdown.exe /r /t 5 /c 'balena-migrate: restarting once into stage2' }",
    );
    expect(script).not.toMatch(/\/s\b|\/h\b|Stop-Computer/);
  });
});

describe('the stage2 log', () => {
  const script = scriptOf(windowsReadStage2LogCommand('C:\\balena-migrate', 'stage2.log'));

  it('is looked for in the work dir, then at the ESP root through a temporary mountvol letter', () => {
    expect(script).toContain("$candidates = @((Join-Path $W 'stage2.log'))");
    expect(script).toContain('$null = Invoke-BmNative { mountvol.exe "$($letter):" /s }');
    expect(script).toContain('} finally { $null = Invoke-BmNative { mountvol.exe "$($letter):" /d } }');
    expect(script).toContain('\\balena-migrate-stage2.log');
  });

  it('is read back from base64, so no code page garbles it', () => {
    const text = 'stage2: image sha256 mismatch; nothing written\nrebooting into the old OS ✓\n';
    const out = `log C:\\balena-migrate\\stage2.log\r\nbase64 ${Buffer.from(text).toString('base64')}\r\n`;
    expect(parseWindowsStage2Log(out)).toEqual({ path: 'C:\\balena-migrate\\stage2.log', text });
  });

  it('is null when there was none', () => {
    expect(parseWindowsStage2Log('none\r\n')).toBeNull();
  });
});

describe('waiting for apply.ps1', () => {
  const hash = 'ab'.repeat(32);
  const verdict = (stdout: string) => applyVerdict(parseWindowsApplyState(stdout), hash);

  it('is done when this plan is committed', () => {
    expect(verdict(`committed\r\nplan ${hash}\r\nall 6 steps done\r\n`)).toEqual({ kind: 'done' });
  });

  it('waits while the scheduled task starts or runs', () => {
    expect(verdict(`running\r\nplan ${hash}\r\nstarting\r\n`)).toEqual({ kind: 'wait' });
    expect(verdict(`rolling-back\r\nplan ${hash}\r\nstep 5 failed\r\n`)).toEqual({ kind: 'wait' });
    expect(verdict('absent\r\n')).toEqual({ kind: 'wait' });
  });

  it('fails with the reason when it rolled back, could not roll back, or was interrupted', () => {
    expect(verdict(`rolled-back\r\nplan ${hash}\r\nstep 5 failed: access denied\r\n`)).toEqual({
      kind: 'failed',
      message: 'apply failed and was rolled back: step 5 failed: access denied',
    });
    expect(verdict(`rollback-failed\r\nplan ${hash}\r\nBoot0004 stayed\r\n`).kind).toBe('failed');
    expect(verdict(`interrupted\r\nplan ${hash}\r\nthe process is gone\r\n`).kind).toBe('failed');
  });

  it('fails when another plan is committed', () => {
    expect(verdict(`committed\r\nplan ${'cd'.repeat(32)}\r\n\r\n`)).toMatchObject({ kind: 'failed' });
  });
});

describe("PowerShell's error output", () => {
  it('is turned from CLIXML into its error lines', () => {
    const clixml =
      '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">' +
      '<S S="Error">Move-Item : Access to the path &apos;C:\\balena-migrate\\x.part&apos; is denied._x000D__x000A_</S>' +
      '<S S="Error">At line:4 char:1_x000D__x000A_</S></Objs>';
    expect(readablePowerShellError(clixml)).toBe(
      "Move-Item : Access to the path 'C:\\balena-migrate\\x.part' is denied.\nAt line:4 char:1",
    );
  });

  it('passes plain text through', () => {
    expect(readablePowerShellError('icacls failed: no mapping\r\n')).toBe('icacls failed: no mapping');
  });
});
