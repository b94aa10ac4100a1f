// The inventory as the rest of the tool sees it (ResolvedHost), and the declared form that
// each file format (ours, Ansible YAML, Ansible INI) is parsed into before resolution.
import type { Become } from './fields.ts';
import type { SourceLocation } from './source-location.ts';

export type InventoryFormat = 'balena-migrate' | 'ansible-yaml' | 'ansible-ini';

/** One SSH hop on the way to a host, in the order they are connected through. */
export interface JumpHop {
  /** the inventory name, or the host part of a `user@host:port` spec */
  name: string;
  address: string;
  port: number;
  user: string;
  identityFile: string | undefined;
}

export interface ResolvedHost {
  name: string;
  address: string;
  port: number;
  user: string;
  become: Become;
  /** absolute path of the private key to offer first, if any */
  identityFile: string | undefined;
  /** hops to connect through, first hop first; empty for a direct connection */
  jump: JumpHop[];
  /** overrides the migration config's workDir */
  workDir: string | undefined;
  /** absolute path; overrides the migration config's image */
  image: string | undefined;
  /** absolute path; overrides the migration config's configJson */
  configJson: string | undefined;
  /** free-form operator variables, merged defaults < groups < host */
  vars: Record<string, unknown>;
  /** every group the host belongs to (directly or through a parent), parents first */
  groups: string[];
  /** where the host is defined, for error messages */
  source: SourceLocation;
}

export interface InventoryGroup {
  name: string;
  /** names of every host in the group or any of its children, in inventory order */
  hosts: string[];
  children: string[];
  source: SourceLocation;
}

export interface Inventory {
  file: string;
  format: InventoryFormat;
  hosts: ResolvedHost[];
  groups: InventoryGroup[];
}

/** Settings as written, before precedence and defaults; every field optional. */
export interface HostSettings {
  address?: string;
  port?: number;
  user?: string;
  become?: Become;
  identityFile?: string;
  /** an inventory host name, `user@host:port`, a comma-separated chain, or `none` */
  jump?: string;
  workDir?: string;
  image?: string;
  configJson?: string;
  vars?: Record<string, unknown>;
}

export type SettingName = keyof HostSettings;

/** Settings plus where each one was written, so late checks can point at the line. */
export interface DeclaredSettings {
  values: HostSettings;
  at: Partial<Record<SettingName, SourceLocation>>;
}

export interface DeclaredHost {
  name: string;
  source: SourceLocation;
  settings: DeclaredSettings;
}

export interface Reference {
  name: string;
  source: SourceLocation;
}

export interface DeclaredGroup {
  name: string;
  source: SourceLocation;
  hosts: Reference[];
  children: Reference[];
  settings: DeclaredSettings;
}

/** A parsed inventory file in any format, ready for resolveInventory. */
export interface InventoryDocument {
  file: string;
  format: InventoryFormat;
  defaults: DeclaredSettings;
  hosts: DeclaredHost[];
  groups: DeclaredGroup[];
  /** hosts used only as SSH jump hosts, never migrated (our format only) */
  jumpHosts: DeclaredHost[];
}

export function emptySettings(): DeclaredSettings {
  return { values: {}, at: {} };
}
