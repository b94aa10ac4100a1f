// The host's side of an upload on Windows: the same protocol as on Linux (ssh/upload.ts),
// done by Windows PowerShell with Get-FileHash instead of sh and sha256sum. SFTP itself is
// the same on Windows' OpenSSH server; it takes paths as `C:/dir/file`, PowerShell here gets
// them as `C:\dir\file`. There are no POSIX modes: who may read the files is the work dir's
// ACL (windowsPrepareWorkDirCommand), which every file in it inherits.
import type { UploadVerifier, VerifierCommand } from '../../ssh/upload.ts';
import { powershellCommand, psQuote } from './ps-quote.ts';

/** `C:/balena-migrate/x` or `/C:/balena-migrate/x` (SFTP) → `C:\balena-migrate\x`. */
export function windowsPathFromSftp(sftpPath: string): string {
  const p = sftpPath.replace(/^\/(?=[A-Za-z]:)/, '').replace(/\//g, '\\');
  if (!/^[A-Za-z]:\\/.test(p)) throw new Error(`not an absolute Windows path: ${sftpPath}`);
  return p;
}

const PRELUDE = ["$ErrorActionPreference = 'Stop'", "$ProgressPreference = 'SilentlyContinue'"];
/** sha256 of a file, lowercase hex, as sha256sum prints it. */
const HASH_FN =
  'function Get-BmSha256([string]$Path) { (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash.ToLowerInvariant() }';

function ps(lines: string[]): VerifierCommand {
  const c = powershellCommand([...PRELUDE, HASH_FN, ...lines, ''].join('\n'));
  return c.stdin === undefined ? { command: c.command } : { command: c.command, stdin: c.stdin };
}

export const windowsUploadVerifier: UploadVerifier = {
  state(finalPath, part, wantSize) {
    if (!Number.isSafeInteger(wantSize) || wantSize < 0) throw new Error(`bad size ${wantSize}`);
    return ps([
      `$f = ${psQuote(windowsPathFromSftp(finalPath))}`,
      `$p = ${psQuote(windowsPathFromSftp(part))}`,
      'if (Test-Path -LiteralPath $f -PathType Leaf) {',
      '  $s = (Get-Item -LiteralPath $f).Length',
      '  [Console]::Out.WriteLine("final $s")',
      `  if ($s -eq ${wantSize}) { [Console]::Out.WriteLine("hash $(Get-BmSha256 $f)") }`,
      '}',
      'if (Test-Path -LiteralPath $p -PathType Leaf) { [Console]::Out.WriteLine("part $((Get-Item -LiteralPath $p).Length)") }',
      'exit 0',
    ]);
  },
  move(part, finalPath) {
    return ps([
      `Move-Item -LiteralPath ${psQuote(windowsPathFromSftp(part))} -Destination ${psQuote(windowsPathFromSftp(finalPath))} -Force`,
      "[Console]::Out.WriteLine('ok')",
    ]);
  },
  finish(part, finalPath, want) {
    if (!/^[0-9a-f]{64}$/.test(want)) throw new Error(`bad sha256 ${want}`);
    return ps([
      `$p = ${psQuote(windowsPathFromSftp(part))}`,
      '$h = Get-BmSha256 $p',
      'if (-not $h) { exit 3 }',
      `if ($h -ne '${want}') { [Console]::Out.WriteLine("mismatch $h"); exit 0 }`,
      `Move-Item -LiteralPath $p -Destination ${psQuote(windowsPathFromSftp(finalPath))} -Force`,
      "[Console]::Out.WriteLine('ok')",
    ]);
  },
  // No streaming hash: the file is hashed once after the transfer (one more read of it).
  sftpModes: false,
};
