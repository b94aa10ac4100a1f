// Which shell runs our commands on a host, asked with the first command after connecting.
// Linux's sshd runs an exec request through the login user's POSIX shell (`sh -c`);
// Windows' OpenSSH server runs it through cmd.exe, or through PowerShell when its
// DefaultShell says so. One command line has to be harmless in all three and answer
// differently in each, so that nothing is left behind and nothing errors on any of them.
//
//   echo bm-shell %OS% $true $PSEdition
//
// - sh (and bash, dash, zsh, fish): `%OS%` is plain text; $true and $PSEdition are unset
//   variables that expand to nothing and, unquoted, vanish:           `bm-shell %OS%`
// - cmd.exe: %OS% expands to Windows_NT; `$` means nothing to cmd:    `bm-shell Windows_NT $true $PSEdition`
// - PowerShell: %OS% is a bare word; $true is True; $PSEdition is Desktop (5.1) or Core
//   (7); echo (Write-Output) prints each argument on its own line:    `bm-shell` `%OS%` `True` `Desktop`
//
// Nothing is quoted, so it does not matter how the server hands the line to the shell
// (cmd /c LINE, powershell -c LINE, sh -c LINE): there are no quotes to lose or keep.
// Pure: the command and the parser; session.ts runs it.

export type HostShell = 'posix' | 'cmd' | 'powershell';

export const SHELL_PROBE_COMMAND = 'echo bm-shell %OS% $true $PSEdition';

export type ShellProbeResult = { kind: HostShell; detail: string } | { kind: 'unknown'; detail: string };

/** Tells the shell from what SHELL_PROBE_COMMAND printed and how it exited. */
export function parseShellProbe(r: {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}): ShellProbeResult {
  const tokens = r.stdout.split(/\s+/).filter(Boolean);
  const said = r.stdout.trim().replace(/\s+/g, ' ').slice(0, 200);
  const unknown = (why: string): ShellProbeResult => ({
    kind: 'unknown',
    detail: `${why} (exit ${r.exitCode}; stdout "${said}"; stderr "${r.stderr.trim().slice(0, 200)}")`,
  });
  if (r.exitCode !== 0) return unknown('the shell probe failed');
  if (tokens[0] !== 'bm-shell') return unknown('the shell probe printed something else');
  const rest = tokens.slice(1);
  if (rest.length === 1 && rest[0] === '%OS%') return { kind: 'posix', detail: 'POSIX shell' };
  // cmd.exe expands %OS% (Windows_NT on every Windows NT) and leaves $ words alone.
  if (rest.length === 3 && rest[1] === '$true' && rest[2] === '$PSEdition') {
    return { kind: 'cmd', detail: `cmd.exe (OS=${rest[0]})` };
  }
  // PowerShell before 5.1 has no $PSEdition: then only True follows.
  if ((rest.length === 2 || rest.length === 3) && rest[0] === '%OS%' && rest[1] === 'True') {
    return { kind: 'powershell', detail: `PowerShell (${rest[2] ?? 'edition unknown'})` };
  }
  return unknown('the shell is none of sh, cmd.exe or PowerShell');
}

/** Windows' OpenSSH server: cmd.exe or PowerShell run our commands. */
export function isWindowsShell(shell: HostShell): boolean {
  return shell !== 'posix';
}
