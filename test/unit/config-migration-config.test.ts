import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  applyConfigOverrides,
  defaultMigrationConfig,
  loadMigrationConfig,
} from '../../orchestrator/config/migration-config.ts';
import { configErrorFrom, fixturePath } from '../fixtures/config/config-error.ts';

const dir = fixturePath('config');
const bad = (name: string) => fixturePath(`config/bad/${name}`);

describe('loadMigrationConfig', () => {
  it('resolves every path against the config file and keeps every value given', () => {
    expect(loadMigrationConfig(`${dir}/balena-migrate.yml`)).toEqual({
      source: `${dir}/balena-migrate.yml`,
      mode: 'pretend',
      image: `${dir}/files/balena.img.gz`,
      configJson: `${dir}/files/config.json`,
      workDir: '/data/balena-migrate',
      allowDeviceTypeMismatch: false,
      stage2: {
        kernel: `${dir}/files/vmlinuz`,
        failMode: 'rescue-shell',
        busybox: `${dir}/files/busybox`,
        ramMarginMiB: 128,
        pretend: true,
        logDevice: 'LABEL=BM-LOGS',
      },
      network: {
        wifi: ['home-wifi'],
        extraFiles: [`${dir}/files/shop-floor.nmconnection`],
        requireNetwork: false,
      },
      ssh: {
        knownHostsFile: `${dir}/files/known_hosts`,
        acceptNewHostKeys: true,
        identityFiles: [`${dir}/files/id_fleet`],
        useAgent: false,
        connectTimeoutSeconds: 5,
        keepaliveSeconds: 3,
        sshConfigFile: `${dir}/ssh/config`,
      },
      verify: { timeoutSeconds: 600, balenaPort: 2222, balenaUser: 'admin' },
      run: { runsDir: `${dir}/out/runs`, concurrency: 4 },
    });
  });

  it('fills every setting the file leaves out with its default', () => {
    const config = loadMigrationConfig(`${dir}/minimal.yml`);
    expect(config).toEqual({
      ...defaultMigrationConfig(dir),
      source: `${dir}/minimal.yml`,
      image: `${dir}/files/balena.img.gz`,
      configJson: `${dir}/files/config.json`,
    });
    expect(config.run.runsDir).toBe(`${dir}/runs`);
  });
});

describe('defaultMigrationConfig', () => {
  it('gives the documented defaults, with home-relative files under the home directory', () => {
    expect(defaultMigrationConfig('/work/site')).toEqual({
      source: undefined,
      mode: 'standalone',
      image: undefined,
      configJson: undefined,
      workDir: '/var/tmp/balena-migrate',
      allowDeviceTypeMismatch: false,
      stage2: {
        kernel: 'host',
        failMode: 'reboot',
        busybox: '/bin/busybox',
        ramMarginMiB: 64,
        pretend: false,
      },
      network: { wifi: 'all', requireNetwork: true, extraFiles: [] },
      ssh: {
        knownHostsFile: join(homedir(), '.ssh/known_hosts'),
        acceptNewHostKeys: false,
        identityFiles: [],
        useAgent: true,
        connectTimeoutSeconds: 20,
        keepaliveSeconds: 10,
        sshConfigFile: join(homedir(), '.ssh/config'),
      },
      verify: { timeoutSeconds: 900, balenaPort: 22222, balenaUser: 'root' },
      run: { runsDir: '/work/site/runs', concurrency: 10 },
    });
  });
});

describe('applyConfigOverrides', () => {
  const base = () => loadMigrationConfig(`${dir}/balena-migrate.yml`);

  it('lets a flag win over the file and leaves the other settings alone', () => {
    const config = applyConfigOverrides(base(), {
      mode: 'standalone',
      ssh: { acceptNewHostKeys: false },
      run: { concurrency: 50 },
    });
    expect(config.mode).toBe('standalone');
    expect(config.ssh).toEqual({ ...base().ssh, acceptNewHostKeys: false });
    expect(config.run).toEqual({ ...base().run, concurrency: 50 });
    expect(config.image).toBe(base().image);
  });

  it('takes relative paths in flags from the current directory, not from the config file', () => {
    const config = applyConfigOverrides(
      defaultMigrationConfig(),
      { image: 'files/balena.img.gz' },
      { cwd: dir },
    );
    expect(config.image).toBe(`${dir}/files/balena.img.gz`);
  });

  it('replaces the identity files of the file with those of the flags', () => {
    const config = applyConfigOverrides(base(), { ssh: { identityFiles: ['files/id_fleet'] } }, { cwd: dir });
    expect(config.ssh.identityFiles).toEqual([`${dir}/files/id_fleet`]);
  });

  it('checks flag values with the same rules as the file, naming the command line', () => {
    const error = configErrorFrom(() => applyConfigOverrides(base(), { run: { concurrency: Number.NaN } }));
    expect(error.where).toEqual({ file: 'command line' });
    expect(error.message).toBe('run.concurrency (from the command line) must be a whole number (got NaN)');
    const mode = configErrorFrom(() => applyConfigOverrides(base(), { mode: 'cloud' as 'pretend' }));
    expect(mode.message).toBe(
      'mode (from the command line) must be one of: standalone, pretend, agent (got "cloud")',
    );
  });

  it('refuses a flag that names a missing file', () => {
    const error = configErrorFrom(() => applyConfigOverrides(base(), { image: 'nope.img' }, { cwd: dir }));
    expect(error.where).toEqual({ file: 'command line' });
    expect(error.message).toBe(`balenaOS image not found: ${dir}/nope.img`);
  });
});

describe('a bad migration config', () => {
  // [fixture, line, col, message, file the location is in when it is not the fixture]
  const cases: Array<[string, number, number, string, string?]> = [
    ['empty.yml', 1, 1, 'the migration config is empty'],
    ['not-a-mapping.yml', 1, 1, 'the file must be a mapping (key: value) (got a list)'],
    ['duplicate-key.yml', 3, 1, "'image' appears twice at the top level (first at line 1, column 1)"],
    ['unknown-key.yml', 2, 1, "unknown key 'config_json' at the top level"],
    ['unknown-nested-key.yml', 2, 3, "unknown key 'knownHosts' in ssh"],
    ['mode-unknown.yml', 1, 7, 'mode must be one of: standalone, pretend, agent (got "cloud")'],
    ['image-missing.yml', 2, 8, `balenaOS image not found: ${dir}/files/balena-6.0.img`],
    [
      'network-keyfile-broken.yml',
      2,
      16,
      `${dir}/files/broken.nmconnection is not a usable NetworkManager keyfile: [wifi] has no ssid; [wifi-security] has no psk`,
    ],
    [
      'log-device-path.yml',
      2,
      14,
      'stage2.logDevice must be LABEL=..., UUID=... or PARTUUID=... (got "/dev/sdb1")',
    ],
    [
      'config-json-broken.yml',
      4,
      3,
      "config.json is not valid JSON: expected ',' or '}' after the property value",
      `${dir}/files/broken-config.json`,
    ],
    [
      'config-json-array.yml',
      1,
      1,
      'config.json must hold a JSON object ({ ... }), found an array',
      `${dir}/files/array-config.json`,
    ],
    [
      'workdir-relative.yml',
      1,
      10,
      'workDir must be an absolute path (starting with /) (got "var/tmp/balena-migrate")',
    ],
    [
      'workdir-space.yml',
      1,
      10,
      'workDir must not contain spaces or line breaks (got "/var/tmp/balena migrate")',
    ],
    [
      'workdir-newline.yml',
      1,
      10,
      'workDir must not contain spaces or line breaks (got "/var/tmp/bm\\nrm -rf /")',
    ],
    ['workdir-root.yml', 1, 10, 'workDir must not be the root directory / (got "//")'],
    ['fail-mode.yml', 2, 13, 'stage2.failMode must be one of: reboot, rescue-shell (got "shell")'],
    ['kernel-missing.yml', 2, 11, `migration kernel not found: ${dir}/files/bzImage`],
    [
      'identity-files-string.yml',
      2,
      18,
      'ssh.identityFiles must be a list of key file paths (got "../files/id_fleet")',
    ],
    ['identity-file-missing.yml', 4, 7, `identity file not found: ${dir}/files/id_missing`],
    ['ssh-config-missing.yml', 2, 18, `ssh config file not found: ${dir}/ssh/no-such-config`],
    ['accept-yes-string.yml', 2, 22, 'ssh.acceptNewHostKeys must be true or false (got "yes")'],
    [
      'balena-port-text.yml',
      2,
      15,
      'verify.balenaPort must be a whole number from 1 to 65535 (got "balena")',
    ],
    ['timeout-fraction.yml', 2, 19, 'verify.timeoutSeconds must be a whole number (got 90.5)'],
    ['concurrency-zero.yml', 2, 16, 'run.concurrency must be at least 1 (got 0)'],
  ];

  it.each(cases)(
    '%s is refused at line %i, column %i with a message naming the problem',
    (name, line, col, message, file) => {
      const error = configErrorFrom(() => loadMigrationConfig(bad(name)));
      expect(error.where).toEqual({ file: file ?? bad(name), line, col });
      expect(error.message).toBe(message);
      expect(error.hint?.length).toBeGreaterThan(10);
    },
  );

  it('suggests the key that was meant for a misspelt one', () => {
    expect(configErrorFrom(() => loadMigrationConfig(bad('unknown-key.yml'))).hint).toBe(
      "did you mean 'configJson'?",
    );
    expect(configErrorFrom(() => loadMigrationConfig(bad('unknown-nested-key.yml'))).hint).toBe(
      "did you mean 'knownHostsFile'?",
    );
  });

  it('lists the valid modes for an unknown one, leaving room for modes to come', () => {
    expect(configErrorFrom(() => loadMigrationConfig(bad('mode-unknown.yml'))).hint).toBe(
      'use one of: standalone, pretend, agent',
    );
  });

  it('takes an image whatever its name (.xz, .zip, no suffix): its content decides, when it is measured', () => {
    const config = loadMigrationConfig(join(dir, 'image-any-name.yml'));
    expect(config.image).toBe(`${dir}/files/balena.img.xz`);
  });

  it('never prints the content of a broken config.json, which holds an API key', () => {
    const error = configErrorFrom(() => loadMigrationConfig(bad('config-json-broken.yml')));
    expect(error.format()).not.toContain('s3cret');
  });

  it('that is missing is refused by path', () => {
    const error = configErrorFrom(() => loadMigrationConfig(bad('no-such.yml')));
    expect(error.where).toEqual({ file: bad('no-such.yml') });
    expect(error.message).toBe('migration config file not found');
  });
});
