// balena-stage2.yml: the contract between the planner and the stage2 init. Flat `key: value`
// lines that YAML reads as a mapping and that busybox sh reads with `read` and `case`, no eval.

/** The keys the stage2 init reads, in the order they are written. */
export const STAGE2_CONFIG_KEYS = [
  'version',
  'mode',
  'fail_mode',
  'grubenv',
  'grubenv_b64',
  'work_dev',
  'work_fstype',
  'work_path',
  'install_disk_of',
  'install_disk_size',
  'image_file',
  'image_compression',
  'image_sha256',
  'image_size',
  'image_raw_size',
  'image_raw_sha256',
  'config_file',
  'config_sha256',
  'network_files',
  'network_sha256',
  'ram_margin',
  'boot_label',
  'log_name',
  'log_device',
  'watchdog',
  'cleanup',
] as const;

/** Compressions stage2 decompresses with busybox while writing (gunzip, unxz, unzip -p). */
export const STAGE2_COMPRESSIONS = ['none', 'gzip', 'xz', 'zip'] as const;

export type Stage2ConfigKey = (typeof STAGE2_CONFIG_KEYS)[number];

/** Bad input for balena-stage2.yml; the message names the key and what is allowed. */
export class Stage2ConfigError extends Error {
  override name = 'Stage2ConfigError';
}

const KEY = /^[a-z][a-z0-9_]*$/;
/** Characters a string value may use: words of [A-Za-z0-9._/=+,-] separated by single spaces. */
const SAFE_VALUE = /^(?:[A-Za-z0-9._/=+,-]+(?: [A-Za-z0-9._/=+,-]+)*)?$/;

function renderValue(key: string, value: string | number | boolean): string {
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new Stage2ConfigError(
        `${key}: ${value} is not a whole number of 0 or more (stage2 does integer maths)`,
      );
    }
    return String(value);
  }
  if (!SAFE_VALUE.test(value)) {
    throw new Stage2ConfigError(
      `${key}: "${value}" has characters stage2 does not accept; use letters, digits and . _ / = + , - ` +
        'with single spaces between words',
    );
  }
  // Strings are always single-quoted so YAML keeps them strings ("1", "true", "-x" stay text).
  return `'${value}'`;
}

/** Renders the config as `key: value` lines with a comment on top. Throws Stage2ConfigError. */
export function renderStage2Config(cfg: Record<string, string | number | boolean>): string {
  const lines = ['# balena-migrate stage2 configuration, read by the stage2 init. Generated: do not edit.'];
  for (const [key, value] of Object.entries(cfg)) {
    if (!KEY.test(key))
      throw new Stage2ConfigError(`"${key}" is not a valid key (lowercase letters, digits, _)`);
    lines.push(`${key}: ${renderValue(key, value)}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Reads the file back the way the init does: comments and blank lines skipped, one pair of
 * surrounding single quotes removed. Every value comes back as a string.
 */
export function parseStage2Config(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.startsWith('#')) return;
    const m = /^([a-z][a-z0-9_]*):(?: (.*))?$/.exec(line);
    if (!m) throw new Stage2ConfigError(`line ${i + 1}: expected "key: value", got "${line}"`);
    let value = m[2] ?? '';
    if (value.length >= 2 && value.startsWith("'") && value.endsWith("'")) value = value.slice(1, -1);
    if (!SAFE_VALUE.test(value))
      throw new Stage2ConfigError(`line ${i + 1}: ${m[1]} has characters outside the safe set`);
    out[m[1]!] = value;
  });
  return out;
}

/**
 * Optional keys: `restore_count` (0 when absent) pairs of `restore_N_from` / `restore_N_to`,
 * paths relative to the root= partition. Stage2 moves each `from` over its `to` before
 * anything else (an empty `from`: `to` did not exist before and is removed).
 */
const RESTORE_KEY = /^restore_(count|[1-9][0-9]?_(from|to))$/;

/** The restore pairs of a config, in order. */
export function restorePairs(cfg: Record<string, string | number | boolean>): { from: string; to: string }[] {
  const count = Number(cfg.restore_count ?? 0);
  const pairs: { from: string; to: string }[] = [];
  for (let i = 1; i <= count; i++) {
    pairs.push({ from: String(cfg[`restore_${i}_from`] ?? ''), to: String(cfg[`restore_${i}_to`] ?? '') });
  }
  return pairs;
}

function checkRestoreKeys(cfg: Record<string, string | number | boolean>): string[] {
  const problems: string[] = [];
  const count = cfg.restore_count ?? 0;
  if (!/^[0-9]{1,2}$/.test(String(count))) return ['restore_count must be a whole number below 100'];
  const n = Number(count);
  for (const key of Object.keys(cfg)) {
    const m = /^restore_([0-9]+)_(from|to)$/.exec(key);
    if (m && Number(m[1]) > n) problems.push(`${key} is beyond restore_count (${n})`);
  }
  for (let i = 1; i <= n; i++) {
    const to = cfg[`restore_${i}_to`];
    const from = cfg[`restore_${i}_from`];
    if (to === undefined) problems.push(`restore_${i}_to is missing`);
    else if (!REL_PATH.test(String(to)))
      problems.push(`restore_${i}_to must be a relative path, not "${to}"`);
    if (from === undefined) problems.push(`restore_${i}_from is missing`);
    else if (from !== '' && !REL_PATH.test(String(from)))
      problems.push(`restore_${i}_from must be empty or a relative path, not "${from}"`);
  }
  return problems;
}

const HEX64 = /^[0-9a-f]{64}$/;
const DEV_SPEC = /^(UUID|PARTUUID|LABEL)=[A-Za-z0-9._-]+$/;
const REL_PATH = /^(?!\/)(?!.*(^|\/)\.\.?(\/|$))[A-Za-z0-9._/+,=-]+$/;

/**
 * Checks a config against the contract the init enforces, so a planner finds mistakes on the
 * operator's machine instead of in stage2. Returns the problems; empty means fine.
 */
export function checkStage2Config(cfg: Record<string, string | number | boolean>): string[] {
  const problems: string[] = [];
  const str = (k: Stage2ConfigKey): string | undefined => (k in cfg ? String(cfg[k]) : undefined);
  for (const key of STAGE2_CONFIG_KEYS) if (!(key in cfg)) problems.push(`${key} is missing`);
  for (const key of Object.keys(cfg)) {
    if (!(STAGE2_CONFIG_KEYS as readonly string[]).includes(key) && !RESTORE_KEY.test(key))
      problems.push(`${key} is not a stage2 key`);
  }
  problems.push(...checkRestoreKeys(cfg));
  const oneOf = (k: Stage2ConfigKey, allowed: string[]): void => {
    const v = str(k);
    if (v !== undefined && !allowed.includes(v))
      problems.push(`${k} must be one of ${allowed.join(', ')}, not "${v}"`);
  };
  oneOf('version', ['1']);
  oneOf('mode', ['flash', 'pretend']);
  oneOf('fail_mode', ['reboot', 'rescue-shell']);
  oneOf('image_compression', [...STAGE2_COMPRESSIONS]);
  for (const k of ['install_disk_size', 'image_size', 'image_raw_size', 'ram_margin'] as const) {
    const v = str(k);
    if (v !== undefined && !/^[0-9]+$/.test(v))
      problems.push(`${k} must be a whole number of bytes, not "${v}"`);
  }
  for (const k of ['image_sha256', 'image_raw_sha256', 'config_sha256'] as const) {
    const v = str(k);
    if (v !== undefined && !HEX64.test(v)) problems.push(`${k} must be 64 lowercase hex digits`);
  }
  for (const k of ['work_dev', 'install_disk_of'] as const) {
    const v = str(k);
    if (v !== undefined && !DEV_SPEC.test(v))
      problems.push(`${k} must be UUID=, PARTUUID= or LABEL=, not "${v}"`);
  }
  const logDevice = str('log_device');
  if (logDevice !== undefined && logDevice !== '' && !DEV_SPEC.test(logDevice)) {
    problems.push(`log_device must be empty, UUID=, PARTUUID= or LABEL=, not "${logDevice}"`);
  }
  const watchdog = str('watchdog');
  if (watchdog !== undefined && watchdog !== '' && !/^\/dev\/watchdog[0-9]{0,2}$/.test(watchdog)) {
    problems.push(`watchdog must be empty or /dev/watchdogN, not "${watchdog}"`);
  }
  const networkFiles = str('network_files');
  const networkHashes = str('network_sha256');
  const files = networkFiles ? networkFiles.split(' ') : [];
  const hashes = networkHashes ? networkHashes.split(' ') : [];
  for (const f of files) {
    if (!REL_PATH.test(f))
      problems.push(`network file "${f}" must be a relative path without "." or ".." parts`);
  }
  for (const h of hashes) {
    if (!HEX64.test(h)) problems.push('network_sha256 must list 64-digit lowercase hex hashes');
  }
  if (networkFiles !== undefined && networkHashes !== undefined && files.length !== hashes.length) {
    problems.push(`network_files names ${files.length} files but network_sha256 has ${hashes.length} hashes`);
  }
  const names = files.map((f) => f.split('/').at(-1));
  if (new Set(names).size !== names.length) problems.push('network_files has two files with the same name');
  for (const k of ['work_path', 'image_file', 'config_file', 'log_name'] as const) {
    const v = str(k);
    if (v !== undefined && v !== '.' && !REL_PATH.test(v)) {
      problems.push(`${k} must be a relative path without "." or ".." parts, not "${v}"`);
    }
  }
  const grubenv = str('grubenv');
  if (grubenv !== undefined && grubenv !== '' && !REL_PATH.test(grubenv)) {
    problems.push(`grubenv must be empty or a relative path, not "${grubenv}"`);
  }
  const cleanup = str('cleanup');
  if (cleanup) {
    for (const p of cleanup.split(' ')) {
      if (!REL_PATH.test(p)) problems.push(`cleanup path "${p}" must be relative without "." or ".." parts`);
    }
  }
  for (const [key, value] of Object.entries(cfg)) {
    try {
      renderValue(key, value);
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  return problems;
}
