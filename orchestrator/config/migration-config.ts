// Loads balena-migrate.yml into a MigrationConfig: shape checked, local paths resolved
// against the file's directory and checked to exist, defaults filled in. Flags from the
// command line are applied on top with applyConfigOverrides.
import { dirname, resolve } from 'node:path';
import {
  type AgentSettingsResolved,
  mergeAgentSettings,
  rejectLiteralSecrets,
  resolveAgentPaths,
} from '../agent/config.ts';
import { ConfigError } from '../errors.ts';
import { normaliseRemoteDir } from './fields.ts';
import {
  requireConfigJson,
  requireFile,
  requireImageFile,
  requireKeyfile,
  resolveLocalPath,
  type Where,
} from './local-files.ts';
import {
  CONFIG_DEFAULTS,
  CONFIG_HINTS,
  CONFIG_PATH_HINTS,
  type ConfigOverrides,
  type FailMode,
  MigrationConfigFile,
  type Mode,
} from './migration-config-schema.ts';
import { readSourceText } from './source-text.ts';
import type { Path } from './validate.ts';
import { dottedPath, validateWith } from './validate.ts';
import { keyNodeAt, locatePath, nodeLocation, parseYamlSource, yamlValue } from './yaml-source.ts';

export type { ConfigOverrides } from './migration-config-schema.ts';

export interface MigrationConfig {
  /** absolute path of the file it was loaded from; undefined when built from defaults */
  source: string | undefined;
  mode: Mode;
  /** absolute path of the balenaOS image; may instead come per host from the inventory */
  image: string | undefined;
  /** absolute path of config.json; may instead come per host from the inventory */
  configJson: string | undefined;
  /** absolute remote working directory, normalised, without a trailing slash */
  workDir: string;
  /** plan even when the image or config.json is for another device type than the host's */
  allowDeviceTypeMismatch: boolean;
  stage2: {
    /** 'host' or the absolute path of a migration kernel */
    kernel: string;
    failMode: FailMode;
    /** absolute path of a static busybox; the default is not checked until the payload is built */
    busybox: string;
    ramMarginMiB: number;
    /** stage2 rehearses: every check, no write, back to the old OS */
    pretend: boolean;
    /** LABEL=/UUID=/PARTUUID= of a filesystem stage2 also saves its log on */
    logDevice?: string;
    /** x86 hosts: grub, efi, or auto (absent) */
    bootManager?: 'auto' | 'grub' | 'efi';
    windowsFallback?: 'none' | 'startup-nsh';
  };
  /** the network carried to balenaOS */
  network: {
    wifi: 'all' | 'none' | string[];
    requireNetwork: boolean;
    /** absolute paths of checked NetworkManager keyfiles */
    extraFiles: string[];
  };
  ssh: {
    knownHostsFile: string;
    acceptNewHostKeys: boolean;
    identityFiles: string[];
    useAgent: boolean;
    connectTimeoutSeconds: number;
    keepaliveSeconds: number;
    /** may not exist when it is the default */
    sshConfigFile: string;
  };
  verify: { timeoutSeconds: number; balenaPort: number; balenaUser: string };
  run: { runsDir: string; concurrency: number };
  /** mode agent: the balena backend settings; undefined when the file and flags say nothing */
  agent: AgentSettingsResolved | undefined;
}

export function loadMigrationConfig(path: string): MigrationConfig {
  const yaml = parseYamlSource(readSourceText(path, 'migration config'));
  const raw = yamlValue(yaml);
  if (raw === null || raw === undefined) {
    throw new ConfigError(
      'the migration config is empty',
      { file: path, line: 1, col: 1 },
      'start from inventory/balena-migrate.example.yml',
    );
  }
  const locate = (at: Path, key?: string) =>
    key === undefined ? locatePath(yaml, at) : nodeLocation(yaml, keyNodeAt(yaml, at, key));
  rejectLiteralSecrets(raw, (at, key) => locate(at, key));
  const given = validateWith(MigrationConfigFile, raw, {
    locate,
    hints: CONFIG_HINTS,
    pathHints: CONFIG_PATH_HINTS,
  });
  const baseDir = dirname(resolve(path));
  const resolved = resolveGivenPaths(given, baseDir, (at) => locatePath(yaml, at));
  return merge(defaultMigrationConfig(baseDir), resolved, resolve(path));
}

/**
 * The configuration used when no file is given (flags only). Relative defaults such as
 * `./runs` are taken from `baseDir`, the current directory by default.
 */
export function defaultMigrationConfig(baseDir: string = process.cwd()): MigrationConfig {
  const d = CONFIG_DEFAULTS;
  return {
    source: undefined,
    mode: d.mode,
    image: undefined,
    configJson: undefined,
    workDir: d.workDir,
    allowDeviceTypeMismatch: d.allowDeviceTypeMismatch,
    stage2: { ...d.stage2 },
    network: { ...d.network, extraFiles: [] },
    ssh: {
      ...d.ssh,
      knownHostsFile: resolveLocalPath(d.ssh.knownHostsFile, baseDir),
      identityFiles: [],
      sshConfigFile: resolveLocalPath(d.ssh.sshConfigFile, baseDir),
    },
    verify: { ...d.verify },
    run: { ...d.run, runsDir: resolveLocalPath(d.run.runsDir, baseDir) },
    agent: undefined,
  };
}

export interface OverrideOptions {
  /** relative paths in flags are taken from here (default: the current directory) */
  cwd?: string;
  /** what errors name as the source, e.g. "command line" */
  origin?: string;
}

/** Applies command-line values on top of a loaded config: a flag wins over the file. */
export function applyConfigOverrides(
  config: MigrationConfig,
  overrides: ConfigOverrides,
  options: OverrideOptions = {},
): MigrationConfig {
  const origin = options.origin ?? 'command line';
  const label = (at: Path) => `${dottedPath(at)} (from the ${origin})`;
  const given = validateWith(MigrationConfigFile, overrides, {
    locate: () => ({ file: origin }),
    hints: CONFIG_HINTS,
    label,
  });
  const resolved = resolveGivenPaths(given, options.cwd ?? process.cwd(), () => ({ file: origin }));
  return merge(config, resolved, config.source);
}

type Given = ReturnType<typeof MigrationConfigFile.parse>;

/** Makes every local path in `given` absolute and checks the files that must exist. */
function resolveGivenPaths(given: Given, baseDir: string, locate: (at: Path) => Where): Given {
  const path = (value: string) => resolveLocalPath(value, baseDir);
  const out: Given = structuredClone(given);
  if (out.workDir !== undefined) out.workDir = normaliseRemoteDir(out.workDir);
  if (out.image !== undefined) {
    out.image = path(out.image);
    requireImageFile(out.image, locate(['image']), baseDir);
  }
  if (out.configJson !== undefined) {
    out.configJson = path(out.configJson);
    requireConfigJson(out.configJson, locate(['configJson']), baseDir);
  }
  const stage2 = out.stage2;
  if (stage2?.kernel !== undefined && stage2.kernel !== 'host') {
    stage2.kernel = path(stage2.kernel);
    requireFile(stage2.kernel, locate(['stage2', 'kernel']), 'migration kernel', baseDir);
  }
  if (stage2?.busybox !== undefined) {
    stage2.busybox = path(stage2.busybox);
    requireFile(stage2.busybox, locate(['stage2', 'busybox']), 'busybox binary', baseDir);
  }
  const ssh = out.ssh;
  if (ssh?.knownHostsFile !== undefined) ssh.knownHostsFile = path(ssh.knownHostsFile);
  if (ssh?.identityFiles !== undefined) {
    ssh.identityFiles = ssh.identityFiles.map((file, index) => {
      const absolute = path(file);
      requireFile(absolute, locate(['ssh', 'identityFiles', index]), 'identity file', baseDir);
      return absolute;
    });
  }
  // Only a file the operator named must exist; the default ~/.ssh/config may be absent.
  if (ssh?.sshConfigFile !== undefined) {
    ssh.sshConfigFile = path(ssh.sshConfigFile);
    requireFile(ssh.sshConfigFile, locate(['ssh', 'sshConfigFile']), 'ssh config file', baseDir);
  }
  if (out.run?.runsDir !== undefined) out.run.runsDir = path(out.run.runsDir);
  if (out.network?.extraFiles !== undefined) {
    out.network.extraFiles = out.network.extraFiles.map((file, index) => {
      const absolute = path(file);
      requireKeyfile(absolute, locate(['network', 'extraFiles', index]), baseDir);
      return absolute;
    });
  }
  if (out.agent !== undefined) out.agent = resolveAgentPaths(out.agent, baseDir, locate);
  return out;
}

function merge(base: MigrationConfig, given: Given, source: string | undefined): MigrationConfig {
  return {
    source,
    mode: given.mode ?? base.mode,
    image: given.image ?? base.image,
    configJson: given.configJson ?? base.configJson,
    workDir: given.workDir ?? base.workDir,
    allowDeviceTypeMismatch: given.allowDeviceTypeMismatch ?? base.allowDeviceTypeMismatch,
    stage2: { ...base.stage2, ...defined(given.stage2) },
    network: { ...base.network, ...defined(given.network) },
    ssh: { ...base.ssh, ...defined(given.ssh) },
    verify: { ...base.verify, ...defined(given.verify) },
    run: { ...base.run, ...defined(given.run) },
    agent: mergeAgentSettings(base.agent, given.agent),
  };
}

/** Drops keys whose value is undefined, so they do not overwrite a base value. */
function defined<T extends object>(value: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(value ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}
