// Reads an operator's text file (inventory, config, ssh config, config.json) and turns
// every way it can be wrong — missing, a directory, huge, binary, not UTF-8 — into a
// ConfigError that says what to do, instead of a stack trace or a garbled parse error.
import { readFileSync, statSync } from 'node:fs';
import { ConfigError } from '../errors.ts';
import { locationAt } from './source-location.ts';

export interface SourceText {
  /** the path as the operator gave it (used in error locations) */
  file: string;
  text: string;
}

// Real inventories and configs are kilobytes; anything this big is the wrong file
// (often the balenaOS image itself), and reading it whole would stall the CLI.
const MAX_TEXT_BYTES = 8 * 1024 * 1024;

/** `what` names the file's role in messages, e.g. "inventory" or "config.json". */
export function readSourceText(file: string, what: string): SourceText {
  const bytes = readBytes(file, what);
  const nul = bytes.indexOf(0);
  if (nul >= 0) {
    throw new ConfigError(
      `this is a binary file (it contains NUL bytes), not ${what} text`,
      locationOfByte(file, bytes, nul),
      `point at the ${what} file itself; it must be plain UTF-8 text`,
    );
  }
  const text = bytes.toString('utf8');
  // A valid UTF-8 prefix re-encodes to the same bytes, so the first difference is the
  // first invalid byte.
  const roundTrip = Buffer.from(text, 'utf8');
  if (!roundTrip.equals(bytes)) {
    let bad = 0;
    while (bad < bytes.length && bytes[bad] === roundTrip[bad]) bad++;
    throw new ConfigError(
      `this file is not valid UTF-8 text (bad byte 0x${bytes[bad]?.toString(16).padStart(2, '0')})`,
      locationOfByte(file, bytes, bad),
      `save the ${what} file as UTF-8 (most editors offer "Save with encoding")`,
    );
  }
  return { file, text: text.startsWith('\uFEFF') ? text.slice(1) : text };
}

function readBytes(file: string, what: string): Buffer {
  let size: number;
  try {
    const stat = statSync(file);
    if (stat.isDirectory()) {
      throw new ConfigError('this is a directory, not a file', { file }, `give the path of the ${what} file`);
    }
    size = stat.size;
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw fileProblem(file, what, error);
  }
  if (size > MAX_TEXT_BYTES) {
    throw new ConfigError(
      `this file is too large (${Math.round(size / 1024 / 1024)} MiB) for ${what} text`,
      { file },
      `check the path: the ${what} is plain text of a few kilobytes`,
    );
  }
  try {
    return readFileSync(file);
  } catch (error) {
    throw fileProblem(file, what, error);
  }
}

function fileProblem(file: string, what: string, error: unknown): ConfigError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new ConfigError(
      `${what} file not found`,
      { file },
      `check the path (relative paths are taken from ${process.cwd()})`,
    );
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new ConfigError(
      `cannot read the ${what} file: permission denied`,
      { file },
      'check its permissions',
    );
  }
  return new ConfigError(
    `cannot read the ${what} file (${code ?? String(error)})`,
    { file },
    'check the path and its permissions',
  );
}

function locationOfByte(file: string, bytes: Buffer, index: number) {
  return locationAt(file, bytes.subarray(0, index).toString('utf8'), Number.MAX_SAFE_INTEGER);
}
