// Reads an Ansible INI inventory as it is: `[group]` host lines with key=value variables,
// `[group:vars]`, `[group:children]`, host ranges, and hosts before any section.
import { ConfigError } from '../errors.ts';
import { AnsibleInventoryBuilder } from './ansible-builder.ts';
import { expandHostRange, type Token, tokenizeIniLine } from './ini-tokens.ts';
import type { InventoryDocument } from './inventory-types.ts';
import type { SourceLocation } from './source-location.ts';
import type { SourceText } from './source-text.ts';

type Section = { group: string; kind: 'hosts' | 'vars' | 'children' };

const GROUP_NAME = /^[A-Za-z0-9_.-]+$/;

export function parseAnsibleIniInventory(source: SourceText): InventoryDocument {
  const builder = new AnsibleInventoryBuilder();
  let section: Section = { group: 'ungrouped', kind: 'hosts' };
  source.text.split(/\r?\n/).forEach((line, index) => {
    const at = (col: number): SourceLocation => ({ file: source.file, line: index + 1, col });
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith(';')) return;
    const indent = line.length - line.trimStart().length;
    if (trimmed.startsWith('[')) {
      section = parseSectionHeader(trimmed, at(indent + 1), (offset) => at(indent + 1 + offset));
      builder.group(section.group, at(indent + 2));
    } else if (section.kind === 'hosts') {
      readHostLine(builder, section.group, tokenizeIniLine(line), at);
    } else if (section.kind === 'children') {
      const [child] = tokenizeIniLine(line);
      if (!child) return;
      if (!GROUP_NAME.test(child.text)) throw badGroupName(child.text, at(child.col));
      builder.child(section.group, child.text, at(child.col));
    } else {
      readVarsLine(builder, section.group, line, indent, at);
    }
  });
  return builder.build(source.file, 'ansible-ini');
}

function parseSectionHeader(
  header: string,
  where: SourceLocation,
  at: (offset: number) => SourceLocation,
): Section {
  const match = /^\[([^\]]*)\]\s*([#;].*)?$/.exec(header);
  if (!match) {
    throw new ConfigError(
      'section header must end with ]',
      where,
      'write the header as [group], on a line of its own',
    );
  }
  const [name = '', kind, extra] = match[1]!.split(':');
  if (extra !== undefined || (kind !== undefined && kind !== 'vars' && kind !== 'children')) {
    throw new ConfigError(
      `unknown section kind '${match[1]}'`,
      at(1 + name.length),
      'use [group], [group:vars] or [group:children]',
    );
  }
  if (!GROUP_NAME.test(name)) throw badGroupName(name, at(1));
  return { group: name, kind: kind === undefined ? 'hosts' : kind };
}

function readHostLine(
  builder: AnsibleInventoryBuilder,
  group: string,
  tokens: Token[],
  at: (col: number) => SourceLocation,
): void {
  const [first, ...rest] = tokens;
  if (!first) return;
  // `host:2222` is Ansible's short form for a port (colons inside a [1:3] range or an IPv6
  // address are not).
  const portMatch = /^((?:[^:[\]]|\[[^\]]*\])+):(\d+)$/.exec(first.text);
  const pattern = portMatch ? portMatch[1]! : first.text;
  const names = expandHostRange(pattern);
  if (!names) {
    throw new ConfigError(
      `bad host range in '${first.text}'`,
      at(first.col),
      'write a range as [1:9], [01:10] or [a:f], e.g. nuc-[01:20]',
    );
  }
  const variables = rest.map((token) => {
    const eq = token.text.indexOf('=');
    if (eq <= 0) {
      throw new ConfigError(
        `expected key=value after the host name, got '${token.text}'`,
        at(token.col),
        'write host variables as key=value, e.g. ansible_host=192.0.2.10 (quote values with spaces)',
      );
    }
    const raw = token.text.slice(eq + 1);
    return {
      key: token.text.slice(0, eq),
      value: token.quoted ? raw : literal(raw),
      col: token.col + eq + 1,
    };
  });
  for (const name of names) {
    builder.host(name, at(first.col));
    builder.member(group, name, at(first.col));
    if (portMatch) builder.hostVar(name, 'ansible_port', { value: portMatch[2], source: at(first.col) });
    for (const { key, value, col } of variables) builder.hostVar(name, key, { value, source: at(col) });
  }
}

function readVarsLine(
  builder: AnsibleInventoryBuilder,
  group: string,
  line: string,
  indent: number,
  at: (col: number) => SourceLocation,
): void {
  const eq = line.indexOf('=');
  if (eq < 0) {
    throw new ConfigError(
      `expected key=value in [${group}:vars]`,
      at(indent + 1),
      'write one variable per line, e.g. ansible_user=admin',
    );
  }
  const key = line.slice(0, eq).trim();
  const rawValue = line.slice(eq + 1);
  const valueStart = eq + 1 + (rawValue.length - rawValue.trimStart().length);
  // In :vars sections Ansible keeps values as text; only surrounding quotes are removed.
  const value = rawValue.trim().replace(/^(["'])(.*)\1$/, '$2');
  builder.groupVar(group, key, { value, source: at(valueStart + 1) });
}

/** Host-line values are Python literals in Ansible: numbers and True/False are typed. */
function literal(raw: string): unknown {
  if (/^-?\d+$/.test(raw)) return Number(raw);
  if (raw === 'True' || raw === 'true') return true;
  if (raw === 'False' || raw === 'false') return false;
  return raw;
}

function badGroupName(name: string, where: SourceLocation): ConfigError {
  return new ConfigError(
    `'${name}' is not a valid group name`,
    where,
    'use letters, digits, _ . and - only, e.g. [lab_east]',
  );
}
