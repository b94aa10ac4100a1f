// The group hierarchy: references checked, cycles found and named, and for each host the
// groups it belongs to in precedence order (parents before children).
import { ConfigError } from '../errors.ts';
import { suggestionHint } from './did-you-mean.ts';
import type { DeclaredGroup, InventoryDocument } from './inventory-types.ts';

export interface GroupTree {
  /** group names a host belongs to, directly or through a parent, parents first */
  groupsOf(host: string): string[];
  /** host names in a group or any group nested in it, in inventory order */
  membersOf(group: string): string[];
}

export function buildGroupTree(doc: InventoryDocument): GroupTree {
  const groups = new Map(doc.groups.map((group) => [group.name, group]));
  checkReferences(doc, groups);
  checkCycles(doc.groups, groups);

  const parents = new Map<string, string[]>();
  for (const group of doc.groups) {
    for (const child of group.children)
      parents.set(child.name, [...(parents.get(child.name) ?? []), group.name]);
  }
  // Depth orders precedence: a child's vars override its parent's, as in Ansible.
  const depths = new Map<string, number>();
  const depth = (name: string): number => {
    const known = depths.get(name);
    if (known !== undefined) return known;
    const value = Math.max(-1, ...(parents.get(name) ?? []).map(depth)) + 1;
    depths.set(name, value);
    return value;
  };
  const ancestorsAndSelf = (name: string, into: Set<string>): Set<string> => {
    if (!into.has(name)) {
      into.add(name);
      for (const parent of parents.get(name) ?? []) ancestorsAndSelf(parent, into);
    }
    return into;
  };
  const direct = new Map<string, string[]>();
  for (const group of doc.groups) {
    for (const ref of group.hosts) direct.set(ref.name, [...(direct.get(ref.name) ?? []), group.name]);
  }
  const byPrecedence = (a: string, b: string) => depth(a) - depth(b) || (a < b ? -1 : a > b ? 1 : 0);
  const groupsOf = (host: string) => {
    const all = new Set<string>();
    for (const group of direct.get(host) ?? []) ancestorsAndSelf(group, all);
    return [...all].sort(byPrecedence);
  };
  const hostOrder = doc.hosts.map((host) => host.name);
  return {
    groupsOf,
    membersOf: (group) => hostOrder.filter((host) => groupsOf(host).includes(group)),
  };
}

function checkReferences(doc: InventoryDocument, groups: Map<string, DeclaredGroup>): void {
  const hostNames = doc.hosts.map((host) => host.name);
  const hosts = new Set(hostNames);
  for (const group of doc.groups) {
    for (const ref of group.hosts) {
      if (!hosts.has(ref.name)) {
        throw new ConfigError(
          `group '${group.name}' lists unknown host '${ref.name}'`,
          ref.source,
          `define it under hosts:, or fix the name (${suggestionHint(ref.name, hostNames, 'known hosts')})`,
        );
      }
    }
    for (const ref of group.children) {
      if (!groups.has(ref.name)) {
        throw new ConfigError(
          `group '${group.name}' lists unknown child group '${ref.name}'`,
          ref.source,
          `define it under groups:, or fix the name (${suggestionHint(ref.name, [...groups.keys()], 'known groups')})`,
        );
      }
    }
    if (hosts.has(group.name)) {
      throw new ConfigError(
        `'${group.name}' is the name of both a host and a group`,
        group.source,
        'rename one of them: --limit could not tell which you mean',
      );
    }
  }
}

function checkCycles(list: DeclaredGroup[], groups: Map<string, DeclaredGroup>): void {
  const done = new Set<string>();
  const visit = (group: DeclaredGroup, path: string[]) => {
    if (done.has(group.name)) return;
    for (const ref of group.children) {
      const start = path.indexOf(ref.name);
      if (ref.name === group.name || start >= 0) {
        const cycle = [...path.slice(start < 0 ? path.length : start), group.name, ref.name];
        throw new ConfigError(
          `groups form a cycle: ${cycle.join(' → ')}`,
          ref.source,
          `a group cannot contain itself: remove '${ref.name}' from the children of '${group.name}'`,
        );
      }
      visit(groups.get(ref.name)!, [...path, group.name]);
    }
    done.add(group.name);
  };
  for (const group of list) visit(group, []);
}
