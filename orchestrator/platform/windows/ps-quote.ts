// The one way a dynamic value reaches PowerShell, and the one way a PowerShell script reaches
// a Windows host over OpenSSH. Windows' OpenSSH server hands our command line to cmd.exe (its
// default shell) or to PowerShell (if DefaultShell says so); a command line made only of a
// program name, switches and base64 means the same to both, so nothing is quoted for them.

/**
 * Characters PowerShell's tokenizer takes as a single quote: the ASCII one and the four
 * typographic ones (‘ ’ ‚ ‛). Inside a single-quoted string any of them ends the string
 * unless it is doubled, so every one of them is doubled.
 */
const PS_SINGLE_QUOTES = /['\u2018\u2019\u201A\u201B]/g;

/**
 * Quote one value as a PowerShell single-quoted string literal. Inside single quotes
 * nothing expands (`$()`, backticks, `$var` and double quotes are plain text) and the only
 * special characters are the single quotes themselves, each written twice. Newlines are
 * kept as they are (a single-quoted string may span lines).
 */
export function psQuote(value: string): string {
  if (typeof value !== 'string') throw new TypeError(`psQuote expects a string, got ${typeof value}`);
  // A NUL cannot travel in a script file or a command line; refuse it instead of cutting the value.
  if (value.includes('\0')) throw new Error('cannot pass a NUL character to PowerShell');
  return `'${value.replace(PS_SINGLE_QUOTES, (q) => q + q)}'`;
}

/** `@('a', 'b')`: an array literal of quoted strings (an empty one is `@()`). */
export function psArray(values: readonly string[]): string {
  return `@(${values.map(psQuote).join(', ')})`;
}

/** The executable of Windows PowerShell 5.1, present on every Windows 10 and 11. */
export const POWERSHELL_EXE = 'powershell.exe';

/** Switches for every non-interactive run: no profile, no prompts, our scripts allowed. */
export const POWERSHELL_SWITCHES = ['-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass'] as const;

/**
 * cmd.exe takes command lines up to 8191 characters; OpenSSH for Windows runs exec requests
 * through it by default, so a longer command line would be cut or refused.
 */
export const CMD_LINE_LIMIT = 8191;

/** `-EncodedCommand` takes the script as base64 of its UTF-16LE bytes. */
export function encodePowerShellScript(script: string): string {
  if (script.includes('\0')) throw new Error('cannot pass a NUL character to PowerShell');
  return Buffer.from(script, 'utf16le').toString('base64');
}

/**
 * A short script that reads the real script from standard input as UTF-8 bytes and runs it:
 * for scripts whose encoded form would not fit a command line. (`-Command -` would read stdin
 * too, but line by line as if typed, and [Console]::In decodes with the OEM code page, which
 * would garble any non-ASCII character of a path.)
 */
export const STDIN_BOOTSTRAP =
  '$ErrorActionPreference = "Stop"; ' +
  '$m = New-Object System.IO.MemoryStream; ' +
  '[Console]::OpenStandardInput().CopyTo($m); ' +
  '$s = [System.Text.Encoding]::UTF8.GetString($m.ToArray()).TrimStart([char]0xFEFF); ' +
  '& ([ScriptBlock]::Create($s))';

export interface PowerShellCommand {
  /** the command line for the SSH exec request: program, switches and base64 only */
  command: string;
  /** what to write on the command's standard input, when the script travels that way */
  stdin?: string;
}

/**
 * The command line that runs SCRIPT in Windows PowerShell: the script itself as
 * `-EncodedCommand` when that fits cmd.exe's limit, otherwise a short encoded bootstrap that
 * reads the script from stdin. Either way no character of the script is seen by cmd.exe.
 */
export function powershellCommand(script: string, limit: number = CMD_LINE_LIMIT): PowerShellCommand {
  const prefix = [POWERSHELL_EXE, ...POWERSHELL_SWITCHES, '-EncodedCommand'].join(' ');
  const direct = `${prefix} ${encodePowerShellScript(script)}`;
  if (direct.length <= limit) return { command: direct };
  return { command: `${prefix} ${encodePowerShellScript(STDIN_BOOTSTRAP)}`, stdin: script };
}
