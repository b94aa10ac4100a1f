// --limit: which hosts of the inventory this run touches. Patterns are host names, group
// names, globs (`nuc-*`), `all`, `!pattern` to exclude, and `@file` for a list of names
// (the failed-hosts file a previous run writes). A pattern that matches nothing is an
// error: on a fleet, a typo must not silently shrink or empty the run.
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.ts';
import { closestName } from './did-you-mean.ts';
import type { Inventory, ResolvedHost } from './inventory-types.ts';
import type { Where } from './local-files.ts';

interface Term {
  pattern: string;
  exclude: boolean;
  where: Where;
}

/** The selected hosts, in inventory order; every host when `limit` is undefined or empty. */
export function selectHosts(inventory: Inventory, limit: string | undefined): ResolvedHost[] {
  if (limit === undefined || limit.trim() === '') return inventory.hosts;
  const terms = parseLimit(limit, { file: '--limit' });
  const included = new Set<string>();
  const excluded = new Set<string>();
  for (const term of terms) {
    const matched = matchTerm(inventory, term);
    for (const name of matched) (term.exclude ? excluded : included).add(name);
  }
  const onlyExclusions = terms.every((term) => term.exclude);
  const selected = inventory.hosts.filter(
    (host) => (onlyExclusions || included.has(host.name)) && !excluded.has(host.name),
  );
  if (selected.length === 0) {
    throw new ConfigError(
      `--limit '${limit}' leaves no host to work on`,
      { file: '--limit' },
      'the exclusions (!pattern) remove every host the other patterns select',
    );
  }
  return selected;
}

function parseLimit(limit: string, where: Where): Term[] {
  return limit
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
    .flatMap((part) => {
      const exclude = part.startsWith('!');
      const pattern = exclude ? part.slice(1) : part;
      if (pattern.startsWith('@')) {
        return readLimitFile(pattern.slice(1)).map((term) => ({
          ...term,
          exclude: exclude !== term.exclude,
        }));
      }
      return [{ pattern, exclude, where }];
    });
}

/** One name or pattern per line; `#` starts a comment; blank lines are skipped. */
function readLimitFile(file: string): Term[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new ConfigError(
      `--limit file not found: ${file}`,
      { file: '--limit' },
      `check the path after @ (relative paths are taken from ${process.cwd()})`,
    );
  }
  return text.split(/\r?\n/).flatMap((line, index) => {
    const content = line.replace(/#.*$/, '');
    const pattern = content.trim();
    if (!pattern) return [];
    const col = content.indexOf(pattern) + 1;
    const exclude = pattern.startsWith('!');
    return [
      { pattern: exclude ? pattern.slice(1) : pattern, exclude, where: { file, line: index + 1, col } },
    ];
  });
}

function matchTerm(inventory: Inventory, term: Term): string[] {
  const { pattern } = term;
  if (pattern === 'all' || pattern === '*') return inventory.hosts.map((host) => host.name);
  const matcher = globMatcher(pattern);
  const hosts = inventory.hosts.filter((host) => matcher(host.name)).map((host) => host.name);
  const groups = inventory.groups.filter((group) => matcher(group.name));
  const names = new Set([...hosts, ...groups.flatMap((group) => group.hosts)]);
  if (names.size > 0) return [...names];
  const known = [...inventory.hosts.map((host) => host.name), ...inventory.groups.map((group) => group.name)];
  const close = closestName(pattern, known);
  const emptyGroup = groups.length > 0;
  throw new ConfigError(
    emptyGroup
      ? `--limit pattern '${pattern}' names a group with no hosts`
      : `--limit pattern '${pattern}' matches no host or group in ${inventory.file}`,
    term.where,
    close && !emptyGroup
      ? `did you mean '${close}'?`
      : 'use a host name, a group name, or a glob such as nuc-*',
  );
}

/** Shell-style globs: `*` any run, `?` one character, `[abc]` / `[a-z]` a class. */
function globMatcher(pattern: string): (name: string) => boolean {
  if (!/[*?[]/.test(pattern)) return (name) => name === pattern;
  const source = pattern
    .replace(/[.+^${}()|\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  let regex: RegExp;
  try {
    regex = new RegExp(`^${source}$`);
  } catch {
    return (name) => name === pattern;
  }
  return (name) => regex.test(name);
}
