// The one way anything reaches a remote shell. Every command string the project sends
// over SSH is built from these two functions, so a file name, a label or a password can
// never become shell syntax.

// Words made only of these characters mean the same thing quoted or not, in any position,
// so they stay bare and logs stay readable. `=` is left out (`a=b cmd` is an assignment),
// as are `~`, `#`, `%` (bash job specs), globs and every shell operator.
const BARE_WORD = /^[A-Za-z0-9_/.:@+,-]+$/;

// A reserved word in command position is syntax, not a command name: quote it.
const RESERVED_WORDS = new Set([
  'if',
  'then',
  'else',
  'elif',
  'fi',
  'do',
  'done',
  'case',
  'esac',
  'while',
  'until',
  'for',
  'in',
  'function',
  'select',
  'time',
  'coproc',
]);

/** Quote one argument for a POSIX shell (sh, dash, bash, busybox ash) so it arrives as one word, unchanged. */
export function shellQuote(arg: string): string {
  if (typeof arg !== 'string') throw new TypeError(`shellQuote expects a string, got ${typeof arg}`);
  // No argv element can hold a NUL byte; a shell would silently cut the word there.
  if (arg.includes('\0')) throw new Error('cannot pass a NUL byte to a remote shell');
  if (BARE_WORD.test(arg) && !RESERVED_WORDS.has(arg)) return arg;
  // Inside single quotes nothing is special except the closing quote itself; a quote in
  // the text becomes: close, backslash-escaped quote, reopen.
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** Quote every element and join with spaces: a command line that runs argv exactly. */
export function shellJoin(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}
