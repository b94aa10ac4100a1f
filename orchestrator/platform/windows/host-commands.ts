// The PowerShell commands of the Windows pipeline besides the probe and the transaction
// (probe.ts, render.ts), and the readers of what they print. Pure: every command is built
// by powershellCommand from text whose every value went through psQuote; nothing runs here.
import type { ApplyStatus } from '../../plan/render-apply.ts';
import { type PowerShellCommand, powershellCommand, psQuote } from './ps-quote.ts';

/** The work dir on a Windows host when the configured one is a POSIX path (the default). */
export const DEFAULT_WINDOWS_WORK_DIR = 'C:\\balena-migrate';

/**
 * The work dir for a Windows host: a configured Windows path as it is (C:\... or C:/...),
 * DEFAULT_WINDOWS_WORK_DIR when the configured one is a POSIX path such as the default
 * /var/tmp/balena-migrate, which means nothing on Windows.
 */
export function windowsWorkDir(configured: string): string {
  if (/^[A-Za-z]:[\\/]/.test(configured)) return configured.replace(/\//g, '\\').replace(/\\+$/, '');
  return DEFAULT_WINDOWS_WORK_DIR;
}

const PRELUDE = [
  "$ErrorActionPreference = 'Stop'",
  "$ProgressPreference = 'SilentlyContinue'",
  // Windows PowerShell 5.1 turns a native program's stderr under `2>&1` into a terminating
  // error when the preference is Stop; native programs run with Continue, their exit code decides.
  "function Invoke-BmNative([scriptblock]$Run) { $ErrorActionPreference = 'Continue'; & $Run 2>&1 | Out-String }",
];

function ps(lines: string[]): PowerShellCommand {
  return powershellCommand([...PRELUDE, ...lines, ''].join('\n'));
}

/** Well-known SIDs, so that the ACL does not depend on the language of the group names. */
export const ADMINISTRATORS_SID = 'S-1-5-32-544';
export const SYSTEM_SID = 'S-1-5-18';

/**
 * Creates the work dir and gives it an ACL of its own: Administrators and SYSTEM only,
 * inherited by every file in it (config.json holds the device's API key; Windows has no
 * file modes for SFTP to set). Prints `ok`.
 */
export function windowsPrepareWorkDirCommand(workDir: string): PowerShellCommand {
  return ps([
    `$W = ${psQuote(workDir)}`,
    '$null = New-Item -ItemType Directory -Force -Path $W',
    `$out = Invoke-BmNative { icacls.exe $W /inheritance:r /grant:r ${psQuote(`*${ADMINISTRATORS_SID}:(OI)(CI)F`)} ${psQuote(`*${SYSTEM_SID}:(OI)(CI)F`)} }`,
    'if ($LASTEXITCODE -ne 0) { [Console]::Error.WriteLine("icacls failed: $($out.Trim())"); exit 1 }',
    "[Console]::Out.WriteLine('ok')",
  ]);
}

/**
 * Prints the time Windows last booted, in UTC, to the 100 ns tick: it changes on every boot,
 * which is what the Linux boot_id tells (a rebooted host from one that never went down).
 */
export function windowsBootIdCommand(): PowerShellCommand {
  return ps([
    '$t = (Get-CimInstance -ClassName Win32_OperatingSystem).LastBootUpTime.ToUniversalTime()',
    "[Console]::Out.WriteLine('boot ' + $t.Ticks)",
  ]);
}

/** The boot "id" from windowsBootIdCommand's output, or null if it printed something else. */
export function parseWindowsBootId(stdout: string): string | null {
  const m = /^boot (\d+)\s*$/m.exec(stdout);
  return m ? `windows-boot-${m[1]}` : null;
}

/** Seconds Windows waits before restarting: enough for the SSH exec to return cleanly. */
export const REBOOT_DELAY_SECONDS = 5;

/**
 * Restarts Windows once (a restart, not a shutdown: with Fast Startup a shutdown would leave
 * NTFS hibernated). shutdown.exe returns at once; the restart follows after the delay.
 */
export function windowsRebootCommand(): PowerShellCommand {
  return ps([
    `$out = Invoke-BmNative { shutdown.exe /r /t ${REBOOT_DELAY_SECONDS} /c ${psQuote('balena-migrate: restarting once into stage2')} }`,
    'if ($LASTEXITCODE -ne 0) { [Console]::Error.WriteLine("shutdown /r failed: $($out.Trim())"); exit 1 }',
    "[Console]::Out.WriteLine('restarting')",
  ]);
}

/** Stage2's log name at the ESP root when it could not save it in the work dir (stage2/init). */
export const ESP_STAGE2_LOG = 'balena-migrate-stage2.log';

/**
 * Prints where stage2's log was found and its bytes as base64: `log PATH` then `base64 ...`,
 * or `none`. Looks in the work dir first, then at the ESP root (given a drive letter with
 * mountvol for the read, and taken back). Read-only.
 */
export function windowsReadStage2LogCommand(workDir: string, logName: string): PowerShellCommand {
  return ps([
    `$W = ${psQuote(workDir)}`,
    `$candidates = @((Join-Path $W ${psQuote(logName)}))`,
    'function Write-BmLogFile([string]$Path) {',
    "  [Console]::Out.WriteLine('log ' + $Path)",
    "  [Console]::Out.WriteLine('base64 ' + [Convert]::ToBase64String([System.IO.File]::ReadAllBytes($Path)))",
    '}',
    'foreach ($c in $candidates) { if (Test-Path -LiteralPath $c -PathType Leaf) { Write-BmLogFile $c; exit 0 } }',
    '$used = @(Get-PSDrive -PSProvider FileSystem | ForEach-Object { $_.Name.ToUpperInvariant() })',
    "$letter = @('S','T','U','V','W','X','Y','Z' | Where-Object { $used -notcontains $_ })[0]",
    "if (-not $letter) { [Console]::Out.WriteLine('none'); exit 0 }",
    '$null = Invoke-BmNative { mountvol.exe "$($letter):" /s }',
    "if ($LASTEXITCODE -ne 0) { [Console]::Out.WriteLine('none'); exit 0 }",
    'try {',
    `  $e = "$($letter):\\${ESP_STAGE2_LOG}"`,
    "  if (Test-Path -LiteralPath $e -PathType Leaf) { Write-BmLogFile $e } else { [Console]::Out.WriteLine('none') }",
    '} finally { $null = Invoke-BmNative { mountvol.exe "$($letter):" /d } }',
  ]);
}

/** The log's text from windowsReadStage2LogCommand's output, or null when there was none. */
export function parseWindowsStage2Log(stdout: string): { path: string; text: string } | null {
  const path = /^log (.+?)\s*$/m.exec(stdout)?.[1];
  const b64 = /^base64 ([A-Za-z0-9+/=]*)\s*$/m.exec(stdout)?.[1];
  if (!path || b64 === undefined) return null;
  return { path, text: Buffer.from(b64, 'base64').toString('utf8') };
}

/** What to do with the transaction state read while waiting for apply.ps1's runner. */
export type ApplyVerdict = { kind: 'done' } | { kind: 'wait' } | { kind: 'failed'; message: string };

/**
 * The transaction's state (parseWindowsApplyState) → done, keep waiting, or failed with the
 * reason. `absent` right after the start is the scheduled task not yet running: wait.
 */
export function applyVerdict(status: ApplyStatus, planHash: string): ApplyVerdict {
  switch (status.state) {
    case 'committed':
      return status.planHash === planHash
        ? { kind: 'done' }
        : { kind: 'failed', message: 'a different plan is committed on the host; undo will run' };
    case 'rolled-back':
      return { kind: 'failed', message: `apply failed and was rolled back: ${status.reason}` };
    case 'rollback-failed':
      return { kind: 'failed', message: `apply failed AND its rollback failed: ${status.reason}` };
    case 'interrupted':
      return { kind: 'failed', message: `apply was interrupted: ${status.reason}` };
    case 'running':
    case 'rolling-back':
    case 'absent':
      return { kind: 'wait' };
    default:
      return {
        kind: 'failed',
        message: `apply is in an unexpected state ${status.state}: ${status.reason}`,
      };
  }
}

/**
 * PowerShell's stderr as text: a powershell.exe whose output is redirected writes its errors
 * as CLIXML (`#< CLIXML` then `<Objs>` with `<S S="Error">` lines, CR/LF escaped as
 * `_x000D__x000A_`); this keeps the error lines. Plain text passes through.
 */
export function readablePowerShellError(stderr: string): string {
  const at = stderr.indexOf('#< CLIXML');
  if (at < 0) return stderr.trim();
  const before = stderr.slice(0, at).trim();
  const lines: string[] = [];
  for (const m of stderr.slice(at).matchAll(/<S S="Error">([\s\S]*?)<\/S>/g)) {
    lines.push(
      m[1]!
        .replace(/_x([0-9A-Fa-f]{4})_/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)))
        .replace(/&lt;/g, '<')
        .replace(/&gt;/g, '>')
        .replace(/&quot;/g, '"')
        .replace(/&apos;/g, "'")
        .replace(/&amp;/g, '&'),
    );
  }
  const text = lines.join('').replace(/\r\n/g, '\n').trim();
  return [before, text].filter(Boolean).join('\n');
}
