// Local paths the operator names (image, config.json, keys, kernels): resolved to absolute
// paths and checked up front, so a typo fails at load time at the line that has it, not
// an hour into a fleet run.
import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../errors.ts';
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

/** Image suffixes the payload can stream today; add `.img.xz` / `.zip` here when it can. */
export const IMAGE_SUFFIXES = ['.img', '.img.gz'] as const;

export function requireImageFile(path: string, where: Where, baseDir: string): void {
  if (!IMAGE_SUFFIXES.some((suffix) => path.endsWith(suffix))) {
    const packed = /\.(xz|zip)$/.test(path);
    throw new ConfigError(
      `the balenaOS image must be a ${IMAGE_SUFFIXES.join(' or ')} file: ${path}`,
      where,
      packed
        ? 'unpack it first (xz -d FILE, or unzip FILE) and point image at the .img inside'
        : 'download the balenaOS image for your device type and point image at the .img or .img.gz',
    );
  }
  requireFile(path, where, 'balenaOS image', baseDir);
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
