import { describe, expect, it } from 'vitest';
import type { WindowsPlan, WindowsStep } from '../../orchestrator/platform/windows/plan.ts';
import { psQuote } from '../../orchestrator/platform/windows/ps-quote.ts';
import {
  parseWindowsApplyState,
  renderWindowsApplyScripts,
  windowsApplyStateCommand,
  windowsFileHashCommand,
  windowsPlanHash,
  windowsStartApplyCommand,
  windowsUndoCommand,
} from '../../orchestrator/platform/windows/render.ts';
import { expectGolden, windowsInput, windowsPlan } from '../fixtures/windows/plan-input.ts';
import { checkBalanced } from '../fixtures/windows/ps-syntax.ts';

const decode = (command: string): string =>
  Buffer.from(command.split(' ').at(-1)!, 'base64').toString('utf16le');

describe('renderWindowsApplyScripts golden scripts', () => {
  const plan = windowsPlan(windowsInput('win11-uefi-clean'));
  const scripts = renderWindowsApplyScripts(plan);

  it('renders apply.ps1 exactly as the golden file says', () => {
    expectGolden('win11-uefi-clean.apply.ps1', scripts.apply);
  });

  it('renders undo.ps1 exactly as the golden file says', () => {
    expectGolden('win11-uefi-clean.undo.ps1', scripts.undo);
  });

  it('renders the fallback plan with its moves and their undo', () => {
    const p = windowsPlan(windowsInput('win11-uefi-clean', (i) => (i.windowsFallback = 'startup-nsh')));
    const s = renderWindowsApplyScripts(p);
    expectGolden('win11-uefi-clean-startup-nsh.apply.ps1', s.apply);
    expect(s.apply).toContain(
      "    11 { Move-BmEspFile -Id '11' -From '\\EFI\\Boot\\bootx64.efi' -To '\\efi_backup\\EFI\\Boot\\bootx64.efi' }",
    );
    expect(s.apply).toContain(
      "    11 { Undo-BmMoveEspFile -Id '11' -From '\\EFI\\Boot\\bootx64.efi' -To '\\efi_backup\\EFI\\Boot\\bootx64.efi' }",
    );
  });
});

describe('renderWindowsApplyScripts', () => {
  const plan = windowsPlan(windowsInput('win11-uefi-clean'));
  const { apply, undo, planHash } = renderWindowsApplyScripts(plan);

  it('starts with a UTF-8 byte order mark so Windows PowerShell 5.1 reads the file as UTF-8', () => {
    expect(apply.startsWith('\uFEFF#')).toBe(true);
    expect(Buffer.from(apply, 'utf8').subarray(0, 3).toString('hex')).toBe('efbbbf');
  });

  it('has the param block as its first statement, after comments only', () => {
    const firstCode = apply
      .replace(/^\uFEFF/, '')
      .split('\n')
      .find((l) => l.trim() !== '' && !l.startsWith('#'));
    expect(firstCode).toBe('param([switch]$Steps, [switch]$Foreground, [switch]$Locked)');
  });

  it('differs between apply.ps1 and undo.ps1 only in the entry point and the usage comment', () => {
    const body = (t: string): string[] =>
      t
        .split('\n')
        .filter((l) => !/^# (apply\.ps1|outlives|undo\.ps1)/.test(l) && !l.startsWith('$Entry = '));
    expect(body(apply)).toEqual(body(undo));
    expect(apply).toContain("\n$Entry = 'apply'\n");
    expect(undo).toContain("\n$Entry = 'undo'\n");
  });

  it('names its plan on a line undo.ps1 is recognised by', () => {
    expect(apply).toContain(`\n$Plan = '${planHash}'\n`);
    expect(undo).toContain(`\n$Plan = '${planHash}'\n`);
    expect(planHash).toBe(windowsPlanHash(plan));
  });

  it('carries the stage2 config as base64 of its exact bytes', () => {
    const step = plan.windows.steps[3]!;
    if (step.kind !== 'esp-write') throw new Error('step 4 is the stage2 config');
    expect(apply).toContain(
      `    4 { Write-BmEspFile -Id '4' -Path '\\balena-stage2.yml' -Base64 '${Buffer.from(step.content).toString('base64')}' }`,
    );
  });

  it('creates the boot option from the planned bytes and sets BootNext to it', () => {
    const step = plan.windows.steps[4]!;
    if (step.kind !== 'efi-boot-option') throw new Error('step 5 is the boot option');
    const b64 = Buffer.from(step.valueHex, 'hex').toString('base64');
    expect(apply).toContain(`    5 { New-BmBootOption -Id '5' -Name 'Boot0002' -Base64 '${b64}' }`);
    expect(apply).toContain(`    5 { Undo-BmBootOption -Id '5' -Name 'Boot0002' -Base64 '${b64}' }`);
    expect(apply).toContain("    6 { Set-BmBootNext -Id '6' -Number 2 }");
    expect(apply).toContain("    6 { Undo-BmBootNext -Id '6' -Number 2 }");
  });

  it('pairs every parenthesis, brace and bracket outside strings and comments', () => {
    checkBalanced(apply);
    checkBalanced(undo);
  });

  it('defines every Bm function that the steps and the entry point call', () => {
    const defined = new Set([...apply.matchAll(/^\s*function ([A-Za-z-]+)/gm)].map((m) => m[1]));
    const called = new Set(
      [
        ...apply.matchAll(
          /\b((?:New|Undo|Copy|Write|Move|Set|Invoke|Get|Mount|Dismount|Resolve|Save|Restore|Test|Add|Enter|Exit|Complete|Start|Remove|ConvertTo)-Bm[A-Za-z]+)/g,
        ),
      ].map((m) => m[1]),
    );
    for (const c of called) expect(defined, c).toContain(c);
  });

  it('is plain ASCII apart from the byte order mark', () => {
    expect(apply.slice(1)).toMatch(/^[\x09\x0a\x20-\x7e]*$/);
  });

  it('runs the detached steps in a scheduled task as SYSTEM, not as a child of the SSH session', () => {
    expect(apply).toContain(
      "New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest",
    );
    expect(apply).toContain('-AllowStartIfOnBatteries -DontStopIfGoingOnBatteries');
    expect(apply).toContain('Start-ScheduledTask -TaskPath $TaskPath -TaskName $TaskName');
  });
});

describe('renderWindowsApplyScripts with hostile values', () => {
  const base = windowsPlan(windowsInput('win11-uefi-clean'));
  const hostile = 'it\'s ‘quoted’ $(Stop-Computer) `n "x" ; Remove-Item C:\\ -Recurse #';
  const steps: WindowsStep[] = [
    { kind: 'esp-mkdir', path: "\\EFI\\it's ‘odd’ $(x)", description: hostile, undo: 'remove it' },
    {
      kind: 'esp-write',
      path: '\\a`b$c',
      content: "line 1\r\nit's $(no)\n",
      description: 'write\nacross lines',
      undo: 'delete it',
    },
  ];
  const plan: WindowsPlan = { ...base, workDir: "C:\\o'brien ‘dir’", windows: { ...base.windows, steps } };
  const { apply } = renderWindowsApplyScripts(plan);

  it('quotes every value with the one quoting function', () => {
    expect(apply).toContain(`    1 { return ${psQuote(hostile)} }`);
    expect(apply).toContain(
      `    1 { New-BmEspDirectory -Id '1' -Path ${psQuote("\\EFI\\it's ‘odd’ $(x)")} }`,
    );
    expect(apply).toContain(`$W = ${psQuote("C:\\o'brien ‘dir’")}`);
    expect(apply).toContain(`    2 { return 'write\nacross lines' }`);
    expect(apply).toContain(
      `    2 { Write-BmEspFile -Id '2' -Path '\\a\`b$c' -Base64 '${Buffer.from("line 1\r\nit's $(no)\n").toString('base64')}' }`,
    );
  });

  it('still pairs every bracket, so no value escaped its string', () => {
    checkBalanced(apply);
  });

  it('refuses paths that are not what a step may touch', () => {
    const bad =
      (s: WindowsStep, workDir = 'C:\\bm') =>
      () =>
        renderWindowsApplyScripts({ ...base, workDir, windows: { ...base.windows, steps: [s] } });
    expect(bad({ kind: 'esp-mkdir', path: 'EFI\\x', description: 'd', undo: 'u' })).toThrow(
      /from the ESP root/,
    );
    expect(bad({ kind: 'esp-mkdir', path: '\\EFI\\..\\x', description: 'd', undo: 'u' })).toThrow(
      /from the ESP root/,
    );
    expect(bad({ kind: 'esp-move', from: '\\a', to: '\\b\0', description: 'd', undo: 'u' })).toThrow(
      /from the ESP root/,
    );
    expect(
      bad({
        kind: 'esp-copy',
        from: 'vmlinuz.efi',
        to: '\\x',
        sha256: 'a'.repeat(64),
        description: 'd',
        undo: 'u',
      }),
    ).toThrow(/absolute Windows path/);
    expect(bad({ kind: 'esp-mkdir', path: '\\x', description: 'd', undo: 'u' }, '/var/tmp/bm')).toThrow(
      /the work dir/,
    );
    expect(bad({ kind: 'efi-boot-next', number: 0x10000, description: 'd', undo: 'u' })).toThrow(
      /boot option number/,
    );
  });
});

describe('the Windows transaction commands', () => {
  it('starts apply.ps1 through -EncodedCommand and passes its exit code on', () => {
    const cmd = windowsStartApplyCommand('C:\\balena-migrate');
    expect(cmd.stdin).toBeUndefined();
    expect(decode(cmd.command)).toBe("& 'C:\\balena-migrate\\apply.ps1'\nexit $LASTEXITCODE\n");
  });

  it('runs undo.ps1 when it is there and says so when it is not', () => {
    expect(decode(windowsUndoCommand('C:\\balena-migrate').command)).toBe(
      [
        "$u = 'C:\\balena-migrate\\undo.ps1'",
        'if (Test-Path -LiteralPath $u) { & $u; exit $LASTEXITCODE }',
        "[Console]::Out.WriteLine('nothing to undo: no undo.ps1')",
        '',
      ].join('\n'),
    );
  });

  it('asks for the state and tells a vanished runner by the free lock', () => {
    const script = decode(windowsApplyStateCommand('C:\\balena-migrate').command);
    expect(script).toContain("$W = 'C:\\balena-migrate'");
    expect(script).toContain("'OpenOrCreate', 'ReadWrite', 'None'");
    checkBalanced(script);
  });

  it('reads the state the way the Linux state is read, CRLF or not', () => {
    const hash = 'f'.repeat(64);
    expect(parseWindowsApplyState(`committed\r\nplan ${hash}\r\nall 6 steps done\r\n`)).toEqual({
      state: 'committed',
      planHash: hash,
      reason: 'all 6 steps done',
    });
  });

  it('hashes uploaded files with Get-FileHash, every path quoted', () => {
    const script = decode(windowsFileHashCommand(["C:\\bm\\it's.img"]).command);
    expect(script).toContain("foreach ($p in @('C:\\bm\\it''s.img')) {");
    checkBalanced(script);
  });
});
