// Turns a declared inventory (any format) into ResolvedHosts: settings merged by
// precedence (defaults < groups, parents first < host), then the ssh config, then the
// built-in defaults; local files resolved and checked; jump chains resolved.
import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError } from '../errors.ts';
import { isValidAddress, normaliseRemoteDir } from './fields.ts';
import { buildGroupTree } from './group-tree.ts';
import type {
  DeclaredHost,
  DeclaredSettings,
  Inventory,
  InventoryDocument,
  JumpHop,
  ResolvedHost,
  SettingName,
} from './inventory-types.ts';
import { requireConfigJson, requireFile, requireImageFile, resolveLocalPath } from './local-files.ts';
import type { SourceLocation } from './source-location.ts';
import {
  mergeConnectionSettings,
  NO_SSH_CONFIG,
  type SshConfigLookup,
  type SshHostSettings,
} from './ssh-config.ts';

/** Used when neither the inventory nor the ssh config says otherwise. */
export const HOST_DEFAULTS = { port: 22, user: 'root', become: 'none' } as const;

interface Connection extends JumpHop {
  jump: JumpHop[];
}

export function resolveInventory(
  doc: InventoryDocument,
  sshConfig: SshConfigLookup = NO_SSH_CONFIG,
): Inventory {
  const baseDir = dirname(resolve(doc.file));
  checkNames(doc);
  const tree = buildGroupTree(doc);
  const groupsByName = new Map(doc.groups.map((group) => [group.name, group]));
  const checked = new Set<string>();
  // Many hosts share one image or config.json through a group: check each file once.
  const once = (key: string, check: () => void) => {
    if (!checked.has(key)) {
      check();
      checked.add(key);
    }
  };

  const merged = new Map<string, DeclaredSettings>();
  for (const host of doc.hosts) {
    const layers = [
      doc.defaults,
      ...tree.groupsOf(host.name).map((name) => groupsByName.get(name)!.settings),
    ];
    merged.set(host.name, mergeSettings([...layers, host.settings]));
  }
  for (const host of doc.jumpHosts) merged.set(host.name, host.settings);

  const declared = new Map([...doc.hosts, ...doc.jumpHosts].map((host) => [host.name, host]));
  const connections = new Map<string, Connection>();

  const localFile = (settings: DeclaredSettings, name: 'identityFile' | 'image' | 'configJson') => {
    const value = settings.values[name];
    if (value === undefined) return undefined;
    const path = resolveLocalPath(value, baseDir);
    const where = settings.at[name]!;
    once(`${name}:${path}`, () => {
      if (name === 'image') requireImageFile(path, where, baseDir);
      else if (name === 'configJson') requireConfigJson(path, where, baseDir);
      else requireFile(path, where, 'identity file', baseDir);
    });
    return path;
  };

  const connectionOf = (name: string, chain: string[]): Connection => {
    const known = connections.get(name);
    if (known) return known;
    const host = declared.get(name)!;
    const settings = merged.get(name)!;
    const values = { ...settings.values, identityFile: localFile(settings, 'identityFile') };
    const ssh = withExistingKeys(lookupSsh(sshConfig, name, settings.values.address));
    const merge = mergeConnectionSettings(values, ssh, { address: name, ...HOST_DEFAULTS });
    const addressFrom: SourceLocation | { file: string } =
      settings.values.address !== undefined
        ? settings.at.address!
        : ssh.hostName !== undefined
          ? { file: sshConfig.file ?? '' }
          : host.source;
    checkAddress(merge.address, name, addressFrom, settings.values.address === undefined && !ssh.hostName);
    const jumpWhere = settings.values.jump !== undefined ? settings.at.jump! : { file: sshConfig.file ?? '' };
    const jump = merge.jump === undefined ? [] : hopsFor(merge.jump, jumpWhere, [...chain, name]);
    const connection: Connection = { ...merge, name, jump };
    connections.set(name, connection);
    return connection;
  };

  const hopsFor = (spec: string, where: SourceLocation | { file: string }, chain: string[]): JumpHop[] => {
    if (spec === 'none') return [];
    return spec.split(',').flatMap((part) => {
      if (chain.includes(part)) {
        throw new ConfigError(
          `jump hosts form a cycle: ${[...chain, part].join(' → ')}`,
          where,
          'a host cannot be reached through itself: fix the jump settings of these hosts',
        );
      }
      if (declared.has(part)) {
        const { jump, ...hop } = connectionOf(part, chain);
        return [...jump, toHop(hop)];
      }
      return literalHops(part, where, chain);
    });
  };

  /** `[ssh://][user@]host[:port]`, completed from the ssh config like `ssh -J` would. */
  const literalHops = (
    spec: string,
    where: SourceLocation | { file: string },
    chain: string[],
  ): JumpHop[] => {
    const match = /^(?:ssh:\/\/)?(?:([^@/]+)@)?(\[[^\]]+\]|[^:@/]+)(?::(\d+))?$/.exec(spec);
    const host = match?.[2]?.replace(/^\[(.*)\]$/, '$1');
    const port = match?.[3] === undefined ? undefined : Number(match[3]);
    if (!match || !host || (port !== undefined && (port < 1 || port > 65535))) {
      throw new ConfigError(
        `jump '${spec}' is neither a host in the inventory nor user@host:port`,
        where,
        'name a host or jump host of this inventory, or write user@host:port',
      );
    }
    const ssh = withExistingKeys(sshConfig.lookup(host));
    const merge = mergeConnectionSettings({ user: match[1], port }, ssh, { address: host, ...HOST_DEFAULTS });
    checkAddress(merge.address, host, where, false);
    const before =
      merge.jump === undefined ? [] : hopsFor(merge.jump, { file: sshConfig.file ?? '' }, [...chain, host]);
    return [...before, toHop({ ...merge, name: host })];
  };

  const hosts: ResolvedHost[] = doc.hosts.map((host) => {
    const settings = merged.get(host.name)!;
    const connection = connectionOf(host.name, []);
    return {
      name: host.name,
      address: connection.address,
      port: connection.port,
      user: connection.user,
      become: settings.values.become ?? HOST_DEFAULTS.become,
      identityFile: connection.identityFile,
      jump: connection.jump,
      workDir:
        settings.values.workDir === undefined ? undefined : normaliseRemoteDir(settings.values.workDir),
      image: localFile(settings, 'image'),
      configJson: localFile(settings, 'configJson'),
      vars: settings.values.vars ?? {},
      groups: tree.groupsOf(host.name),
      source: host.source,
    };
  });
  const groups = doc.groups.map((group) => ({
    name: group.name,
    hosts: tree.membersOf(group.name),
    children: group.children.map((child) => child.name),
    source: group.source,
  }));
  return { file: doc.file, format: doc.format, hosts, groups };
}

/** Later layers win field by field; free-form vars merge key by key. */
function mergeSettings(layers: DeclaredSettings[]): DeclaredSettings {
  const out: DeclaredSettings = { values: {}, at: {} };
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer.values) as [SettingName, unknown][]) {
      if (value === undefined) continue;
      const next = key === 'vars' ? { ...out.values.vars, ...(value as Record<string, unknown>) } : value;
      (out.values as Record<string, unknown>)[key] = next;
      out.at[key] = layer.at[key];
    }
  }
  return out;
}

/**
 * The ssh config matched against the inventory name (as `ssh nuc-1` would), then, for what
 * that leaves open, against the explicit address: Ansible users often write patterns such
 * as `Host 10.0.*` because Ansible connects by address.
 */
function lookupSsh(sshConfig: SshConfigLookup, name: string, address: string | undefined): SshHostSettings {
  const byName = sshConfig.lookup(name);
  if (address === undefined || address === name) return byName;
  const byAddress = sshConfig.lookup(address);
  return {
    hostName: byName.hostName,
    user: byName.user ?? byAddress.user,
    port: byName.port ?? byAddress.port,
    identityFiles: byName.identityFiles.length ? byName.identityFiles : byAddress.identityFiles,
    proxyJump: byName.proxyJump ?? byAddress.proxyJump,
  };
}

/**
 * OpenSSH skips IdentityFile entries that do not exist (a `Host *` default such as
 * ~/.ssh/id_rsa often does not), so only existing ones are offered.
 */
function withExistingKeys(ssh: SshHostSettings): SshHostSettings {
  return { ...ssh, identityFiles: ssh.identityFiles.filter(isFile) };
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function checkNames(doc: InventoryDocument): void {
  const seen = new Map<string, DeclaredHost>();
  for (const host of [...doc.hosts, ...doc.jumpHosts]) {
    const first = seen.get(host.name);
    if (first) {
      throw new ConfigError(
        `'${host.name}' is defined both as a host and as a jump host (first at line ${first.source.line})`,
        host.source,
        'a jump host is never migrated: keep it under jumpHosts: only, or under hosts: only',
      );
    }
    seen.set(host.name, host);
  }
}

function checkAddress(
  address: string,
  host: string,
  where: SourceLocation | { file: string },
  fromName: boolean,
) {
  if (isValidAddress(address)) return;
  if (fromName) {
    throw new ConfigError(
      `host '${host}' has no address, and its name is not a valid host name`,
      where,
      'add address: with its IP address or DNS name',
    );
  }
  throw new ConfigError(
    `'${address}' (address of ${host}) is not an IP address or a DNS name`,
    where,
    'use an IP address such as 192.0.2.10 or a DNS name such as nuc-1.lab.example',
  );
}

function toHop(connection: JumpHop): JumpHop {
  const { name, address, port, user, identityFile } = connection;
  return { name, address, port, user, identityFile };
}
