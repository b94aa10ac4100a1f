// Collects hosts, groups and variables as the two Ansible parsers (YAML and INI) meet them,
// with Ansible's rules: a host or group may appear many times and its variables merge
// (later wins); `all` holds the defaults; `ungrouped` is not a real group.
import { ConfigError } from '../errors.ts';
import { type AnsibleVar, settingsFromAnsibleVars } from './ansible-vars.ts';
import {
  type DeclaredGroup,
  type DeclaredHost,
  emptySettings,
  type InventoryDocument,
  type InventoryFormat,
  type Reference,
} from './inventory-types.ts';
import type { SourceLocation } from './source-location.ts';

interface HostDraft {
  source: SourceLocation;
  vars: Map<string, AnsibleVar>;
}

interface GroupDraft {
  source: SourceLocation;
  hosts: Reference[];
  children: Reference[];
  vars: Map<string, AnsibleVar>;
}

const IMPLICIT = new Set(['all', 'ungrouped']);

export class AnsibleInventoryBuilder {
  private readonly hosts = new Map<string, HostDraft>();
  private readonly groups = new Map<string, GroupDraft>();
  private readonly allVars = new Map<string, AnsibleVar>();

  host(name: string, source: SourceLocation): void {
    if (!this.hosts.has(name)) this.hosts.set(name, { source, vars: new Map() });
  }

  hostVar(host: string, key: string, variable: AnsibleVar): void {
    this.hosts.get(host)!.vars.set(key, variable);
  }

  group(name: string, source: SourceLocation): void {
    if (IMPLICIT.has(name) || this.groups.has(name)) return;
    this.groups.set(name, { source, hosts: [], children: [], vars: new Map() });
  }

  groupVar(group: string, key: string, variable: AnsibleVar): void {
    if (group === 'all') {
      this.allVars.set(key, variable);
      return;
    }
    if (group === 'ungrouped') {
      throw new ConfigError(
        "variables for the 'ungrouped' group are not supported",
        variable.source,
        "set them on the hosts themselves, or on 'all'",
      );
    }
    this.group(group, variable.source);
    this.groups.get(group)!.vars.set(key, variable);
  }

  member(group: string, host: string, source: SourceLocation): void {
    if (IMPLICIT.has(group)) return;
    this.group(group, source);
    const draft = this.groups.get(group)!;
    if (!draft.hosts.some((ref) => ref.name === host)) draft.hosts.push({ name: host, source });
  }

  child(group: string, child: string, source: SourceLocation): void {
    this.group(child, source);
    if (IMPLICIT.has(group) || IMPLICIT.has(child)) return;
    this.group(group, source);
    const draft = this.groups.get(group)!;
    if (!draft.children.some((ref) => ref.name === child)) draft.children.push({ name: child, source });
  }

  build(file: string, format: InventoryFormat): InventoryDocument {
    if (this.hosts.size === 0) {
      throw new ConfigError(
        'the inventory defines no hosts',
        { file, line: 1, col: 1 },
        'add host lines, e.g. nuc-1 ansible_host=192.0.2.10',
      );
    }
    const hosts: DeclaredHost[] = [...this.hosts].map(([name, draft]) => ({
      name,
      source: draft.source,
      settings: settingsFromAnsibleVars(draft.vars),
    }));
    const groups: DeclaredGroup[] = [...this.groups].map(([name, draft]) => ({
      name,
      source: draft.source,
      hosts: draft.hosts,
      children: draft.children,
      settings: draft.vars.size ? settingsFromAnsibleVars(draft.vars) : emptySettings(),
    }));
    const defaults = this.allVars.size ? settingsFromAnsibleVars(this.allVars) : emptySettings();
    return { file, format, defaults, hosts, groups, jumpHosts: [] };
  }
}
