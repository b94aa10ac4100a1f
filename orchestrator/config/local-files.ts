// Local paths the operator names (image, config.json, keys, kernels): resolved to absolute
// paths and checked up front, so a typo fails at load time at the line that has it, not
// an hour into a fleet run.
import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../errors.ts';
import { checkKeyfile } from '../network/keyfile.ts';
import { findJsonSyntaxError } from './json-syntax.ts';
import { locationAt } from './source-location.ts';
import { readSourceText } from './source-text.ts';

export type Where = { file: string; line?: number; col?: number };

/** `~` and `~/x` mean the operator's home; relative paths are taken from `baseDir`. */
export function resolveLocalPath(path: string, baseDir: string): string {
  if (path === '~') return homedir();
  if (path.startsWith('~/')) return resolve(homedir(), path.slice(2));
  return isAbsolute(path) ? resolve(path) : resolve(baseDir, path);
}

/** Throws at `where` unless `path` is an existing regular file. */
export function requireFile(path: string, where: Where, what: string, baseDir: string): void {
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch {
    throw new ConfigError(
      `${what} not found: ${path}`,
      where,
      `check the path; relative paths are taken from ${baseDir}`,
    );
  }
  if (!isFile)
    throw new ConfigError(`${what} is not a regular file: ${path}`, where, 'give the path of a file');
}

/**
 * Names balenaOS images usually have. They are a hint for people only: the format (raw, gzip,
 * xz, zip) is decided from the file's content when the image is measured (phases/image.ts),
 * so a file is never refused or trusted for its name.
 */
export const IMAGE_SUFFIXES = ['.img', '.img.gz', '.img.xz', '.zip'] as const;

/** The image must exist; what it holds is checked when it is measured, before any upload. */
export function requireImageFile(path: string, where: Where, baseDir: string): void {
  requireFile(path, where, 'balenaOS image', baseDir);
}

/**
 * A NetworkManager keyfile the operator supplies must exist and be one NetworkManager reads:
 * checked here so a typo fails at load time (exit 2), never on a device that then has no network.
 */
export function requireKeyfile(path: string, where: Where, baseDir: string): void {
  requireFile(path, where, 'network keyfile', baseDir);
  const { text } = readSourceText(path, 'network keyfile');
  const { problems } = checkKeyfile(text);
  if (problems.length) {
    throw new ConfigError(
      `${path} is not a usable NetworkManager keyfile: ${problems.join('; ')}`,
      where,
      'fix the file (see `man nm-settings-keyfile`), or leave it out of network.extraFiles',
    );
  }
}

/** config.json must exist and hold a JSON object; syntax errors point inside the JSON. */
export function requireConfigJson(path: string, where: Where, baseDir: string): void {
  requireFile(path, where, 'config.json', baseDir);
  const { text } = readSourceText(path, 'config.json');
  const fix = 'fix it, or download config.json again from the balena dashboard or `balena config generate`';
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    const problem = findJsonSyntaxError(text) ?? { offset: 0, message: 'syntax error' };
    throw new ConfigError(
      `config.json is not valid JSON: ${problem.message}`,
      locationAt(path, text, problem.offset),
      fix,
    );
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const start = text.length - text.trimStart().length;
    const found = Array.isArray(value) ? 'an array' : value === null ? 'null' : `a ${typeof value}`;
    throw new ConfigError(
      `config.json must hold a JSON object ({ ... }), found ${found}`,
      locationAt(path, text, start),
      fix,
    );
  }
}
