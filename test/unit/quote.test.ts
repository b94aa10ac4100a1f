import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { shellJoin, shellQuote } from '../../orchestrator/ssh/quote.ts';

// The shells a host may run our commands under. busybox is what a small device (and our
// stage2) has; it is optional here so the test still runs where it is not installed.
const SHELLS: string[][] = [['/bin/sh'], ['/usr/bin/dash'], ['/usr/bin/bash']];
if (existsSync('/usr/bin/busybox')) SHELLS.push(['/usr/bin/busybox', 'sh']);

const HOSTILE = [
  "'",
  "''",
  "it's",
  "'\\''",
  '"',
  '"$HOME"',
  '$(id)',
  '`id`',
  '$HOME',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, hostile on purpose
  '${PATH}',
  '$((1+1))',
  'a\nb',
  '\n',
  'trailing newline\n',
  'a\rb',
  ';',
  '; rm -rf /tmp/nothing-here',
  '&& echo pwned',
  '| cat',
  '> /tmp/out',
  '< /etc/passwd',
  '*',
  '?',
  '[a-z]',
  '{a,b}',
  '~',
  '~root',
  '#not a comment',
  '!',
  '!!',
  '',
  ' ',
  '  two  spaces  ',
  '\t',
  '-n',
  '-e',
  '--help',
  '-',
  'a=b',
  '%1',
  '\\',
  '\\n',
  'ünïcödé 日本語 🙂',
  '\x01\x02\x1b[31m\x7f',
  'if',
  'then',
  'plain-word_1.2:3@x+y,z/',
];

/** Run `printf '%s\0' ARGS` through a real shell and split what it prints back into argv. */
function roundTrip(shell: string[], args: string[]): string[] {
  const out = execFileSync(shell[0]!, [...shell.slice(1), '-c', `printf '%s\\0' ${shellJoin(args)}`]);
  const parts = out.toString('utf8').split('\0');
  parts.pop(); // the text after the last terminator is empty
  return parts;
}

/** A string of random characters drawn mostly from the ones shells care about. */
function randomHostile(seed: number): string {
  const alphabet = ' \t\n\'"`$\\;&|<>(){}[]*?~#!=%^-,.:/@aZ9\x01ü🙂';
  const chars = Array.from(alphabet);
  let x = seed * 2654435761;
  let s = '';
  const len = (seed % 12) + 1;
  for (let i = 0; i < len; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    s += chars[x % chars.length];
  }
  return s;
}

describe('shellQuote', () => {
  for (const shell of SHELLS) {
    const name = shell.join(' ');

    it(`passes every hostile string through ${name} unchanged, one word each`, () => {
      expect(roundTrip(shell, HOSTILE)).toEqual(HOSTILE);
    });

    it(`passes 400 random strings of shell metacharacters through ${name} unchanged`, () => {
      const strings = Array.from({ length: 400 }, (_, i) => randomHostile(i + 1));
      expect(roundTrip(shell, strings)).toEqual(strings);
    });

    it(`survives a second layer of quoting, as in sudo sh -c, under ${name}`, () => {
      const inner = `printf '%s\\0' ${shellJoin(HOSTILE)}`;
      const out = execFileSync(shell[0]!, [...shell.slice(1), '-c', shellJoin(['sh', '-c', inner])]);
      const parts = out.toString('utf8').split('\0');
      parts.pop();
      expect(parts).toEqual(HOSTILE);
    });

    it(`makes a reserved word in command position a command name, not syntax, under ${name}`, () => {
      const r = spawnSync(shell[0]!, [...shell.slice(1), '-c', shellJoin(['if', 'x'])], { encoding: 'utf8' });
      expect(r.status).toBe(127); // "not found", where bare `if x` would be a syntax error (2)
    });
  }

  it('leaves plain words bare so logged commands stay readable', () => {
    expect(shellJoin(['sha256sum', '--', '/var/tmp/balena-migrate/image.img'])).toBe(
      'sha256sum -- /var/tmp/balena-migrate/image.img',
    );
  });

  it('quotes the empty string as an empty word rather than dropping it', () => {
    expect(shellQuote('')).toBe("''");
  });

  it('quotes a word containing = so it is never read as a variable assignment', () => {
    expect(shellQuote('a=b')).toBe("'a=b'");
  });

  it('refuses a NUL byte, which no shell argument can carry', () => {
    expect(() => shellQuote('a\0b')).toThrow(/NUL/);
    expect(() => shellJoin(['ok', '\0'])).toThrow(/NUL/);
  });
});
