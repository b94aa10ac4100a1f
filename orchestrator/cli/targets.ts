// Turns the loaded config and the selected inventory hosts into what each host's pipeline
// needs (RunSettings, HostTarget); ad-hoc `--host user@address:port` targets too.

import type { MigrationConfig } from '../config/migration-config.ts';
import { ConfigError } from '../errors.ts';
import type { HostTarget, RunSettings } from '../phases/settings.ts';

export function runSettingsFrom(config: MigrationConfig, command: 'check' | 'run'): RunSettings {
  // Agent mode gives every host its own image and config.json (HostTarget), made by
  // orchestrator/agent before the hosts run; the hosts then run like standalone ones.
  const agent = config.mode === 'agent';
  if (!config.image && !agent) {
    throw new ConfigError(
      'no balenaOS image given',
      config.source ? { file: config.source } : undefined,
      'set `image:` in balena-migrate.yml, or pass --image PATH',
    );
  }
  if (!config.configJson && !agent) {
    throw new ConfigError(
      'no config.json given',
      config.source ? { file: config.source } : undefined,
      'set `configJson:` in balena-migrate.yml, or pass --config-json PATH',
    );
  }
  return {
    command,
    mode: config.mode === 'agent' ? 'standalone' : config.mode,
    image: config.image ?? '',
    configJson: config.configJson ?? '',
    workDir: config.workDir,
    allowDeviceTypeMismatch: config.allowDeviceTypeMismatch,
    kernel: config.stage2.kernel,
    failMode: config.stage2.failMode,
    ramMarginBytes: config.stage2.ramMarginMiB * 1024 * 1024,
    stage2Pretend: config.stage2.pretend,
    logDevice: config.stage2.logDevice ?? null,
    bootManager: config.stage2.bootManager ?? 'auto',
    windowsFallback: config.stage2.windowsFallback ?? 'none',
    network: config.network,
    busyboxPath: config.stage2.busybox,
    ssh: {
      knownHostsFile: config.ssh.knownHostsFile,
      acceptNewHostKeys: config.ssh.acceptNewHostKeys,
      identityFiles: config.ssh.identityFiles,
      useAgent: config.ssh.useAgent,
      connectTimeoutSeconds: config.ssh.connectTimeoutSeconds,
      keepaliveSeconds: config.ssh.keepaliveSeconds,
    },
    verify: config.verify,
  };
}

/** `[user@]address[:port]`, the form ssh users know. */
export function parseHostSpec(spec: string): HostTarget {
  const m = /^(?:([^@\s]+)@)?(\[[^\]]+\]|[^:@\s]+)(?::(\d{1,5}))?$/.exec(spec);
  if (!m) {
    throw new ConfigError(`--host ${JSON.stringify(spec)} is not [user@]address[:port]`, {
      file: 'command line',
    });
  }
  const address = m[2]!.replace(/^\[|\]$/g, '');
  const port = m[3] ? Number(m[3]) : 22;
  if (port < 1 || port > 65535)
    throw new ConfigError(`--host ${spec}: port must be 1-65535`, { file: 'command line' });
  return { name: spec, address, port, user: m[1] ?? 'root' };
}
