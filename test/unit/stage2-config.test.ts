import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  checkStage2Config,
  parseStage2Config,
  renderStage2Config,
  STAGE2_CONFIG_KEYS,
} from '../../stage2/build/stage2-config.ts';
import { runInitShell } from '../fixtures/stage2/init-shell.ts';

const dir = mkdtempSync(join(tmpdir(), 'stage2-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sample = {
  version: 1,
  mode: 'flash',
  fail_mode: 'reboot',
  grubenv: 'boot/grub/grubenv',
  grubenv_b64: Buffer.from('# GRUB Environment Block\n'.padEnd(1024, '#')).toString('base64'),
  work_dev: 'UUID=0a1b2c3d-1111-2222-3333-444455556666',
  work_fstype: 'ext4',
  work_path: 'var/tmp/balena-migrate',
  install_disk_of: 'PARTUUID=9d40c85f-01',
  install_disk_size: 64_424_509_440,
  image_file: 'balena.img.gz',
  image_compression: 'gzip',
  image_sha256: 'a'.repeat(64),
  image_size: 123_456_789,
  image_raw_size: 1_987_654_321,
  image_raw_sha256: 'c'.repeat(64),
  config_file: 'config.json',
  config_sha256: 'b'.repeat(64),
  network_files: 'network/10-home-wifi.nmconnection network/20-eth0.nmconnection',
  network_sha256: `${'d'.repeat(64)} ${'e'.repeat(64)}`,
  ram_margin: 134_217_728,
  boot_label: 'resin-boot',
  log_name: 'stage2.log',
  log_device: 'LABEL=BM-LOGS',
  watchdog: '/dev/watchdog0',
  cleanup: 'boot/balena-migrate balena-stage2.yml',
} satisfies Record<string, string | number | boolean>;

const asStrings = (cfg: Record<string, string | number | boolean>) =>
  Object.fromEntries(Object.entries(cfg).map(([k, v]) => [k, String(v)]));

// What the init's parser makes of a file: every c_<key> and whether it accepted the file.
function parsedByInit(text: string): { values: Record<string, string>; ok: boolean; log: string } {
  const file = join(dir, `cfg-${Math.random().toString(36).slice(2)}.yml`);
  writeFileSync(file, text);
  const r = runInitShell(
    'load_config "$1"; ok=$?; for k in $CONFIG_KEYS; do printf "%s=%s\\n" "$k" "$(get_c "$k")"; done; echo "ok=$ok CONFIG_OK=$CONFIG_OK"',
    [file],
  );
  const lines = r.stdout.trim().split('\n');
  const last = lines.pop() ?? '';
  const values = Object.fromEntries(
    lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  return { values, ok: last === 'ok=0 CONFIG_OK=1', log: r.stderr };
}

describe('balena-stage2.yml rendering', () => {
  it('writes one key: value line per key, strings quoted, numbers plain', () => {
    const text = renderStage2Config(sample);
    expect(text).toContain("\nmode: 'flash'\n");
    expect(text).toContain('\nversion: 1\n');
    expect(text).toContain('\nimage_raw_size: 1987654321\n');
    expect(text).toContain("\ncleanup: 'boot/balena-migrate balena-stage2.yml'\n");
    expect(text.split('\n').filter((l) => !l.startsWith('#') && l.includes(': ')).length).toBe(
      STAGE2_CONFIG_KEYS.length,
    );
  });

  it('is YAML that reads back to the same mapping', () => {
    const text = renderStage2Config({
      ...sample,
      grubenv: '',
      cleanup: '',
      extra_flag: true,
      odd: '-x',
      num_like: '1',
    });
    expect(parseYaml(text)).toEqual({
      ...sample,
      grubenv: '',
      cleanup: '',
      extra_flag: true,
      odd: '-x',
      num_like: '1',
    });
  });

  it('reads back through the TypeScript parser to the same strings', () => {
    expect(parseStage2Config(renderStage2Config(sample))).toEqual(asStrings(sample));
  });

  it('is read by the init script itself to the same values, and accepted', () => {
    const parsed = parsedByInit(renderStage2Config(sample));
    expect(parsed.values).toEqual(asStrings(sample));
    expect(parsed.ok).toBe(true);
  });

  it('refuses values busybox sh could not read safely', () => {
    for (const bad of [
      '$(reboot)',
      'a;b',
      "it's",
      'x`y`',
      'two  spaces',
      ' lead',
      'new\nline',
      'a:b',
      'a#b',
      'ü',
    ]) {
      expect(() => renderStage2Config({ work_path: bad }), JSON.stringify(bad)).toThrow(
        /characters stage2 does not accept/,
      );
    }
  });

  it('refuses numbers that are negative, fractional or beyond exact integers, and bad keys', () => {
    expect(() => renderStage2Config({ image_size: -1 })).toThrow(/whole number/);
    expect(() => renderStage2Config({ image_size: 1.5 })).toThrow(/whole number/);
    expect(() => renderStage2Config({ image_size: 2 ** 60 })).toThrow(/whole number/);
    expect(() => renderStage2Config({ 'Bad-Key': 'x' })).toThrow(/not a valid key/);
  });
});

describe('the stage2 config contract', () => {
  it('finds nothing wrong with a complete, well-formed config', () => {
    expect(checkStage2Config(sample)).toEqual([]);
  });

  it('names missing keys, unknown keys and malformed values', () => {
    const { cleanup: _gone, ...rest } = sample;
    const problems = checkStage2Config({
      ...rest,
      mode: 'flsh',
      image_sha256: 'ABC',
      work_dev: '/dev/sda1',
      work_path: '../etc',
      surprise: 1,
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        'cleanup is missing',
        'surprise is not a stage2 key',
        'mode must be one of flash, pretend, not "flsh"',
        'image_sha256 must be 64 lowercase hex digits',
        'work_dev must be UUID=, PARTUUID= or LABEL=, not "/dev/sda1"',
        'work_path must be a relative path without "." or ".." parts, not "../etc"',
      ]),
    );
  });

  it('is enforced the same way by the init: a broken file is rejected with reasons in the log', () => {
    const text = renderStage2Config({ ...sample, mode: 'flsh', work_path: 'a/../b' })
      .replace(/^cleanup:.*\n/m, '')
      .concat('image_file: $(reboot)\n');
    const parsed = parsedByInit(text);
    expect(parsed.ok).toBe(false);
    expect(parsed.log).toContain('config: mode must be flash or pretend');
    expect(parsed.log).toContain('config: work_path must be relative');
    expect(parsed.log).toContain('config: cleanup is missing');
    expect(parsed.log).toMatch(/the value of image_file has characters outside the safe set/);
    // the unsafe line was dropped, never evaluated
    expect(parsed.values.image_file).toBe('balena.img.gz');
  });

  it('checks the image, network, log device and watchdog keys alike in TypeScript and in the init', () => {
    const bad = {
      ...sample,
      image_compression: 'bzip2',
      image_raw_sha256: 'short',
      network_files: 'network/a.nmconnection ../b.nmconnection',
      network_sha256: 'd'.repeat(64),
      log_device: '/dev/sdb1',
      watchdog: '/dev/null',
    };
    expect(checkStage2Config(bad)).toEqual(
      expect.arrayContaining([
        'image_compression must be one of none, gzip, xz, zip, not "bzip2"',
        'image_raw_sha256 must be 64 lowercase hex digits',
        'network file "../b.nmconnection" must be a relative path without "." or ".." parts',
        'network_files names 2 files but network_sha256 has 1 hashes',
        'log_device must be empty, UUID=, PARTUUID= or LABEL=, not "/dev/sdb1"',
        'watchdog must be empty or /dev/watchdogN, not "/dev/null"',
      ]),
    );
    const parsed = parsedByInit(renderStage2Config(bad));
    expect(parsed.ok).toBe(false);
    for (const says of [
      'image_compression must be none, gzip, xz or zip',
      'image_raw_sha256 must be 64 lowercase hex digits',
      "network file '../b.nmconnection' must be a relative path",
      'network_files names 2 files but network_sha256 has 1 hashes',
      'log_device must be empty, UUID=, PARTUUID= or LABEL=',
      'watchdog must be empty or /dev/watchdogN',
    ])
      expect(parsed.log).toContain(says);
    // no network files, no log device, no watchdog: all empty is fine
    const plain = { ...sample, network_files: '', network_sha256: '', log_device: '', watchdog: '' };
    expect(checkStage2Config(plain)).toEqual([]);
    expect(parsedByInit(renderStage2Config(plain)).ok).toBe(true);
  });

  it('is read by the init with CRLF line ends, comments and unknown keys', () => {
    const text = `# comment\r\n${renderStage2Config({ ...sample, future_key: 'x' }).replaceAll('\n', '\r\n')}`;
    const parsed = parsedByInit(text);
    expect(parsed.ok).toBe(true);
    expect(parsed.values.mode).toBe('flash');
    expect(parsed.log).toContain('ignoring unknown key future_key');
  });
});
