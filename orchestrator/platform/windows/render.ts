// Renders a WindowsPlan's steps into apply.ps1 and undo.ps1: one journaled transaction on the
// host that finishes or rolls back on its own, run by a scheduled task so that it outlives the
// SSH session. Pure (apart from reading the two .ps1 templates once): text out, nothing run.
//
// A script is: a header with the plan's values, remote-payload/windows/firmware.ps1 (UEFI
// variables), the step functions rendered here, remote-payload/windows/transaction.ps1 (the
// journal, backups, lock, the main loops) and the entry point. Every value from the plan goes
// through psQuote; file contents and firmware variable values travel as base64.
import { createHash } from 'node:crypto';
import { parseApplyState } from '../../plan/render-apply.ts';
import type { EspPath, WindowsPlan, WindowsStep } from './plan.ts';
import { windowsPayloadFile } from './probe.ts';
import { type PowerShellCommand, powershellCommand, psQuote } from './ps-quote.ts';

export const WINDOWS_APPLY_FILES = {
  apply: 'apply.ps1',
  undo: 'undo.ps1',
  run: 'apply.run.ps1',
  state: 'apply.state',
  journal: 'apply.journal',
  lock: 'apply.lock',
  log: 'apply.log',
  out: 'apply.out',
  backup: 'backup',
  savedUndo: 'apply.undo.ps1',
} as const;

/** The scheduled task that runs the steps: \balena-migrate\balena-migrate-apply. */
export const WINDOWS_TASK = { path: '\\balena-migrate\\', name: 'balena-migrate-apply' } as const;

export interface WindowsApplyScripts {
  /** sha256 of the work dir, the ESP and the steps: the identity of this transaction */
  planHash: string;
  /** apply.ps1, starting with a UTF-8 byte order mark: Windows PowerShell 5.1 reads a file
   *  without one in the ANSI code page, which would garble any non-ASCII path */
  apply: string;
  /** undo.ps1: undoes every begun step from the journal; safe to run again */
  undo: string;
}

type PlanPart = Pick<WindowsPlan, 'workDir'> & { windows: Pick<WindowsPlan['windows'], 'esp' | 'steps'> };

/** The identity of a transaction: same work dir, ESP and steps, same hash. */
export function windowsPlanHash(plan: PlanPart): string {
  return createHash('sha256')
    .update(JSON.stringify({ workDir: plan.workDir, esp: plan.windows.esp.guid, steps: plan.windows.steps }))
    .digest('hex');
}

const WINDOWS_PATH = /^[A-Za-z]:(\\[^\\/:*?"<>|\0-\x1f]+)+$/;
const ESP_PATH = /^(\\[^\\/:*?"<>|\0-\x1f]+)+$/;

function assertWindowsPath(p: string, what: string): void {
  if (!WINDOWS_PATH.test(p)) throw new Error(`${what} must be an absolute Windows path: ${p}`);
}

function assertEspPath(p: EspPath, what: string): void {
  if (!ESP_PATH.test(p) || /\\\.\.?(\\|$)/.test(p))
    throw new Error(`${what} must be a path from the ESP root: ${p}`);
}

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

/** The PowerShell calls that do and undo step N. */
function renderStep(step: WindowsStep, n: number): { run: string; undo: string } {
  const q = psQuote;
  const id = q(String(n));
  switch (step.kind) {
    case 'esp-mkdir':
      assertEspPath(step.path, 'esp-mkdir path');
      return {
        run: `New-BmEspDirectory -Id ${id} -Path ${q(step.path)}`,
        undo: `Undo-BmEspDirectory -Id ${id} -Path ${q(step.path)}`,
      };
    case 'esp-copy':
      assertWindowsPath(step.from, 'esp-copy source');
      assertEspPath(step.to, 'esp-copy target');
      if (!/^[0-9a-f]{64}$/.test(step.sha256)) throw new Error(`step ${n}: bad sha256 ${step.sha256}`);
      return {
        run: `Copy-BmToEsp -Id ${id} -From ${q(step.from)} -To ${q(step.to)} -Sha256 ${q(step.sha256)}`,
        undo: `Undo-BmCopyToEsp -Id ${id} -To ${q(step.to)}`,
      };
    case 'esp-write':
      assertEspPath(step.path, 'esp-write path');
      return {
        run: `Write-BmEspFile -Id ${id} -Path ${q(step.path)} -Base64 ${q(b64(step.content))}`,
        undo: `Undo-BmWriteEspFile -Id ${id} -Path ${q(step.path)}`,
      };
    case 'esp-move':
      assertEspPath(step.from, 'esp-move source');
      assertEspPath(step.to, 'esp-move target');
      return {
        run: `Move-BmEspFile -Id ${id} -From ${q(step.from)} -To ${q(step.to)}`,
        undo: `Undo-BmMoveEspFile -Id ${id} -From ${q(step.from)} -To ${q(step.to)}`,
      };
    case 'efi-boot-option': {
      if (!/^([0-9a-f]{2})+$/.test(step.valueHex))
        throw new Error(`step ${n}: the boot option value is not hex`);
      const name = `Boot${step.number.toString(16).toUpperCase().padStart(4, '0')}`;
      const value = Buffer.from(step.valueHex, 'hex').toString('base64');
      return {
        run: `New-BmBootOption -Id ${id} -Name ${q(name)} -Base64 ${q(value)}`,
        undo: `Undo-BmBootOption -Id ${id} -Name ${q(name)} -Base64 ${q(value)}`,
      };
    }
    case 'efi-boot-next':
      if (!Number.isInteger(step.number) || step.number < 0 || step.number > 0xffff) {
        throw new Error(`step ${n}: ${step.number} is not a boot option number`);
      }
      return {
        run: `Set-BmBootNext -Id ${id} -Number ${step.number}`,
        undo: `Undo-BmBootNext -Id ${id} -Number ${step.number}`,
      };
  }
}

function renderScript(plan: PlanPart, hash: string, entry: 'apply' | 'undo'): string {
  assertWindowsPath(plan.workDir, 'the work dir');
  const steps = plan.windows.steps;
  const rendered = steps.map((s, i) => renderStep(s, i + 1));
  const cases = (pick: (r: { run: string; undo: string }) => string): string[] =>
    rendered.map((r, i) => `    ${i + 1} { ${pick(r)} }`);
  const usage =
    entry === 'apply'
      ? [
          '# apply.ps1: takes the lock and starts the transaction in a one-shot scheduled task (so it',
          '# outlives the SSH session), then returns; -Foreground runs it in this PowerShell instead.',
        ]
      : ['# undo.ps1: undoes every step the journal says was begun, newest first; idempotent.'];
  return [
    '\uFEFF# balena-migrate boot setup transaction (Windows). Generated from the plan; do not edit.',
    '# Quoted text is data: every value is a single-quoted string with its quotes doubled.',
    ...usage,
    'param([switch]$Steps, [switch]$Foreground, [switch]$Locked)',
    'Set-StrictMode -Version 2.0',
    "$ErrorActionPreference = 'Stop'",
    "$ProgressPreference = 'SilentlyContinue'",
    '',
    `$W = ${psQuote(plan.workDir)}`,
    `$Plan = '${hash}'`,
    `$NSteps = ${steps.length}`,
    `$EspGuid = ${psQuote(`{${plan.windows.esp.guid}}`)}`,
    `$Entry = '${entry}'`,
    '',
    windowsPayloadFile('firmware.ps1').trimEnd(),
    '',
    'function Get-BmStepDescription([int]$N) {',
    '  switch ($N) {',
    ...steps.map((s, i) => `    ${i + 1} { return ${psQuote(s.description)} }`),
    '  }',
    '  return "step $N"',
    '}',
    '',
    'function Invoke-BmStep([int]$N) {',
    '  switch ($N) {',
    ...cases((r) => r.run),
    '    default { throw "there is no step $N" }',
    '  }',
    '}',
    '',
    'function Undo-BmStep([int]$N) {',
    '  switch ($N) {',
    ...cases((r) => r.undo),
    '    default { throw "there is no step $N" }',
    '  }',
    '}',
    '',
    windowsPayloadFile('transaction.ps1').trimEnd(),
    '',
    '$code = 1',
    'try {',
    "  if ($Entry -eq 'apply') { $code = @(Invoke-BmApplyMain)[-1] } else { $code = @(Invoke-BmUndoMain)[-1] }",
    '} catch {',
    '  $msg = "unexpected error: $($_.Exception.Message) $($_.InvocationInfo.PositionMessage)"',
    '  try { [System.IO.File]::AppendAllText($O, $msg + "`n", $Utf8) } catch { }',
    '  Write-BmLog $msg',
    '  [Console]::Error.WriteLine($msg)',
    '  $code = 1',
    '}',
    'exit [int]$code',
    '',
  ].join('\n');
}

/** Renders apply.ps1 and undo.ps1 for a Windows plan. */
export function renderWindowsApplyScripts(plan: PlanPart): WindowsApplyScripts {
  const hash = windowsPlanHash(plan);
  return { planHash: hash, apply: renderScript(plan, hash, 'apply'), undo: renderScript(plan, hash, 'undo') };
}

function inWorkDir(workDir: string, name: string): string {
  assertWindowsPath(workDir, 'the work dir');
  return `${workDir}\\${name}`;
}

/** Starts the transaction; returns at once, the scheduled task goes on without the SSH session. */
export function windowsStartApplyCommand(workDir: string): PowerShellCommand {
  return powershellCommand(
    `& ${psQuote(inWorkDir(workDir, WINDOWS_APPLY_FILES.apply))}\nexit $LASTEXITCODE\n`,
  );
}

/** Undoes the transaction from its journal (waits up to 30 s for a running one); idempotent. */
export function windowsUndoCommand(workDir: string): PowerShellCommand {
  return powershellCommand(
    [
      `$u = ${psQuote(inWorkDir(workDir, WINDOWS_APPLY_FILES.undo))}`,
      'if (Test-Path -LiteralPath $u) { & $u; exit $LASTEXITCODE }',
      "[Console]::Out.WriteLine('nothing to undo: no undo.ps1')",
      '',
    ].join('\n'),
  );
}

/**
 * Prints the transaction state in the Linux form (parseWindowsApplyState reads it): line 1 the
 * state, or `interrupted` when a running state has lost its process (the lock is free), line 2
 * `plan HASH`, line 3 the reason. A state just set to `running starting` by apply.ps1 is
 * reported as it is for two minutes, the time the scheduled task may take to take the lock.
 */
export function windowsApplyStateCommand(workDir: string): PowerShellCommand {
  assertWindowsPath(workDir, 'the work dir');
  return powershellCommand(
    [
      `$W = ${psQuote(workDir)}`,
      `$S = Join-Path $W '${WINDOWS_APPLY_FILES.state}'`,
      "if (-not (Test-Path -LiteralPath $S)) { [Console]::Out.WriteLine('absent'); exit 0 }",
      "$lines = @([System.IO.File]::ReadAllLines($S)) + @('', '', '')",
      "$fresh = ($lines[2] -eq 'starting') -and (([DateTime]::UtcNow - (Get-Item -LiteralPath $S).LastWriteTimeUtc).TotalSeconds -lt 120)",
      "if (-not $fresh -and @('running', 'rolling-back', 'undoing') -contains $lines[0]) {",
      '  try {',
      `    $f = [System.IO.File]::Open((Join-Path $W '${WINDOWS_APPLY_FILES.lock}'), 'OpenOrCreate', 'ReadWrite', 'None')`,
      '    $f.Dispose()',
      "    [Console]::Out.WriteLine('interrupted')",
      '    [Console]::Out.WriteLine($lines[1])',
      '    [Console]::Out.WriteLine("the process that was $($lines[0]) is gone (killed, or the host rebooted): run undo.ps1")',
      '    exit 0',
      '  } catch { }',
      '}',
      '[Console]::Out.WriteLine($lines[0]); [Console]::Out.WriteLine($lines[1]); [Console]::Out.WriteLine($lines[2])',
      '',
    ].join('\n'),
  );
}

/** Reads what windowsApplyStateCommand printed (CRLF or LF). */
export function parseWindowsApplyState(stdout: string) {
  return parseApplyState(stdout.replace(/\r\n/g, '\n'));
}

/**
 * Prints `sha256 size` for each path (`missing` when it is not there): for checking uploads,
 * as sha256sum does on Linux.
 */
export function windowsFileHashCommand(paths: readonly string[]): PowerShellCommand {
  for (const p of paths) assertWindowsPath(p, 'a hashed file');
  return powershellCommand(
    [
      `foreach ($p in @(${paths.map(psQuote).join(', ')})) {`,
      '  if (Test-Path -LiteralPath $p -PathType Leaf) {',
      '    $h = (Get-FileHash -LiteralPath $p -Algorithm SHA256).Hash.ToLowerInvariant()',
      '    [Console]::Out.WriteLine("$h $((Get-Item -LiteralPath $p).Length)")',
      "  } else { [Console]::Out.WriteLine('missing') }",
      '}',
      '',
    ].join('\n'),
  );
}
