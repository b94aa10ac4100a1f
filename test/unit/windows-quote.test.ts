import { describe, expect, it } from 'vitest';
import {
  CMD_LINE_LIMIT,
  encodePowerShellScript,
  powershellCommand,
  psArray,
  psQuote,
  STDIN_BOOTSTRAP,
} from '../../orchestrator/platform/windows/ps-quote.ts';

const SINGLE_QUOTES = new Set(["'", '\u2018', '\u2019', '\u201A', '\u201B']);

/**
 * Reads one single-quoted string literal the way PowerShell's tokenizer does (about_Quoting_Rules:
 * inside single quotes nothing is expanded; any of the five single-quote characters ends the
 * string unless the next character is a single quote too, and then the pair stands for the
 * second one). Returns the value and where the literal ended.
 */
function readSingleQuoted(text: string): { value: string; end: number } {
  const chars = Array.from(text);
  if (!SINGLE_QUOTES.has(chars[0]!)) throw new Error('not a single-quoted string');
  let value = '';
  for (let i = 1; i < chars.length; i++) {
    const c = chars[i]!;
    if (SINGLE_QUOTES.has(c)) {
      if (SINGLE_QUOTES.has(chars[i + 1] ?? '')) {
        value += chars[i + 1];
        i++;
        continue;
      }
      return { value, end: i + 1 };
    }
    value += c;
  }
  throw new Error('unterminated string');
}

const HOSTILE = [
  "'",
  "''",
  "it's",
  '\u2018curly\u2019',
  '\u2019',
  '\u201A low \u201B',
  "'\u2019'\u2018",
  '"double"',
  '\u201Cfancy double\u201D',
  '$(Remove-Item C:\\ -Recurse)',
  '$env:USERNAME',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a PowerShell expansion, hostile on purpose
  '${env:PATH}',
  '`n`t`0',
  '`',
  '@(1,2)',
  '; Stop-Computer',
  '| Out-Null',
  '& calc.exe',
  '# not a comment',
  '<# block #>',
  'a\nb',
  'a\r\nb',
  '\n',
  '',
  ' ',
  'C:\\Program Files\\x',
  '\\\\?\\Volume{1234}\\',
  'ünïcödé 日本語 🙂',
  '%PATH%',
  '--%',
  '-EncodedCommand',
];

describe('psQuote', () => {
  it.each(HOSTILE)('quotes %j so that PowerShell reads back exactly the same text', (s) => {
    const q = psQuote(s);
    const { value, end } = readSingleQuoted(q);
    expect(value).toBe(s);
    expect(end).toBe(Array.from(q).length);
  });

  it('doubles every kind of single quote, ASCII and typographic', () => {
    expect(psQuote("a'b")).toBe("'a''b'");
    expect(psQuote('a\u2019b')).toBe("'a\u2019\u2019b'");
    expect(psQuote('\u2018\u201A\u201B')).toBe("'\u2018\u2018\u201A\u201A\u201B\u201B'");
  });

  it('leaves dollars, backticks and double quotes alone because single quotes do not expand them', () => {
    expect(psQuote('$(x) `y` "z"')).toBe('\'$(x) `y` "z"\'');
  });

  it('refuses a NUL character instead of cutting the value', () => {
    expect(() => psQuote('a\0b')).toThrow(/NUL/);
  });

  it('survives a thousand random strings of quote-like characters', () => {
    const alphabet = Array.from('\'\u2018\u2019\u201A\u201B"\u201C\u201D`$(){}@;|&#<> \n\r\taZ9\\ü🙂');
    let x = 12345;
    for (let n = 0; n < 1000; n++) {
      let s = '';
      const len = (n % 17) + 1;
      for (let i = 0; i < len; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        s += alphabet[x % alphabet.length];
      }
      expect(readSingleQuoted(psQuote(s)).value).toBe(s);
    }
  });

  it('writes an array literal of quoted strings', () => {
    expect(psArray(["a'b", 'c'])).toBe("@('a''b', 'c')");
    expect(psArray([])).toBe('@()');
  });
});

describe('powershellCommand', () => {
  it('sends a short script as -EncodedCommand: base64 of its UTF-16LE bytes', () => {
    const script = "Write-Output 'héllo'";
    const cmd = powershellCommand(script);
    expect(cmd.stdin).toBeUndefined();
    expect(cmd.command).toBe(
      `powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand ${encodePowerShellScript(script)}`,
    );
    const b64 = cmd.command.split(' ').at(-1)!;
    expect(Buffer.from(b64, 'base64').toString('utf16le')).toBe(script);
  });

  it('builds command lines from characters that cmd.exe and PowerShell take literally', () => {
    const cmd = powershellCommand(HOSTILE.map(psQuote).join('\n'));
    expect(cmd.command).toMatch(/^[A-Za-z0-9.+/= -]+$/);
  });

  it('sends a script too long for cmd.exe on stdin, behind a short encoded bootstrap', () => {
    const script = `# ${'x'.repeat(5000)}\nWrite-Output 1\n`;
    const cmd = powershellCommand(script);
    expect(cmd.stdin).toBe(script);
    expect(cmd.command.length).toBeLessThanOrEqual(CMD_LINE_LIMIT);
    const b64 = cmd.command.split(' ').at(-1)!;
    expect(Buffer.from(b64, 'base64').toString('utf16le')).toBe(STDIN_BOOTSTRAP);
  });

  it('reads the stdin script as UTF-8 bytes, not through the console code page', () => {
    expect(STDIN_BOOTSTRAP).toContain('OpenStandardInput()');
    expect(STDIN_BOOTSTRAP).toContain('[System.Text.Encoding]::UTF8.GetString');
  });

  it('keeps to the limit it is given', () => {
    expect(powershellCommand('Write-Output 1', 50).stdin).toBe('Write-Output 1');
  });
});
