// Tells which inventory format a file is written in, from its content alone (operators
// name files freely: hosts, inventory, fleet.yml, production).
import { tokenizeIniLine } from './ini-tokens.ts';
import type { InventoryFormat } from './inventory-types.ts';

const NATIVE_KEYS = new Set(['defaults', 'hosts', 'groups', 'jumpHosts']);
const INI_HEADER = /^\s*\[[^\]\s,]+\]\s*([#;].*)?$/;
const INI_ASSIGNMENT = /^\s*[A-Za-z_][A-Za-z0-9_]*\s*=/;

/** True when the first meaningful line is an INI section header such as `[lab]`. */
export function startsLikeIni(text: string): boolean {
  const first = text.split(/\r?\n/).find((line) => !/^\s*([#;].*)?$/.test(line));
  return first !== undefined && INI_HEADER.test(first);
}

/**
 * True when every meaningful line could be INI: a section header, a host line
 * (`name key=value ...`) or a `key = value` line. An INI file that does not start with a
 * section header often parses as one meaningless YAML scalar, or not at all.
 */
export function looksLikeIni(text: string): boolean {
  const lines = text.split(/\r?\n/).filter((line) => !/^\s*([#;].*)?$/.test(line));
  return (
    lines.length > 0 &&
    lines.every((line) => INI_HEADER.test(line) || INI_ASSIGNMENT.test(line) || isHostLine(line))
  );
}

function isHostLine(line: string): boolean {
  const [first, ...rest] = tokenizeIniLine(line);
  return (
    first !== undefined &&
    /^[^\s=]*[^\s=:]$/.test(first.text) &&
    rest.every((token) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(token.text))
  );
}

/** Our format has its own top-level keys; anything else that is a mapping is Ansible's. */
export function yamlInventoryFormat(root: Record<string, unknown>): InventoryFormat {
  return Object.keys(root).some((key) => NATIVE_KEYS.has(key)) ? 'balena-migrate' : 'ansible-yaml';
}
