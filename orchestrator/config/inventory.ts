// Loads an inventory file in any supported format (ours, Ansible YAML, Ansible INI) into
// the one Inventory shape the rest of the tool uses.
import { ConfigError } from '../errors.ts';
import { parseAnsibleIniInventory } from './inventory-ansible-ini.ts';
import { parseAnsibleYamlInventory } from './inventory-ansible-yaml.ts';
import { looksLikeIni, startsLikeIni, yamlInventoryFormat } from './inventory-format.ts';
import { parseNativeInventory } from './inventory-native.ts';
import { resolveInventory } from './inventory-resolve.ts';
import type { Inventory, InventoryDocument } from './inventory-types.ts';
import { readSourceText, type SourceText } from './source-text.ts';
import { loadSshConfig, NO_SSH_CONFIG, type SshConfigLookup } from './ssh-config.ts';
import { locatePath, parseYamlSource, yamlValue } from './yaml-source.ts';

export interface LoadInventoryOptions {
  /** read this OpenSSH client config (a missing file is fine); by default none is read */
  sshConfigFile?: string;
  /** an ssh config already loaded (wins over sshConfigFile) */
  sshConfig?: SshConfigLookup;
}

export function loadInventory(path: string, options: LoadInventoryOptions = {}): Inventory {
  const source = readSourceText(path, 'inventory');
  const document = parseInventoryText(source);
  const sshConfig =
    options.sshConfig ?? (options.sshConfigFile ? loadSshConfig(options.sshConfigFile) : NO_SSH_CONFIG);
  return resolveInventory(document, sshConfig);
}

/** Parses inventory text in whichever format it is written, without resolving it. */
export function parseInventoryText(source: SourceText): InventoryDocument {
  if (/^\s*$/.test(source.text.replace(/^\s*#.*$/gm, ''))) {
    throw new ConfigError(
      'the inventory is empty',
      { file: source.file, line: 1, col: 1 },
      'list the hosts to migrate; see inventory/example-inventory.yml',
    );
  }
  if (startsLikeIni(source.text)) return parseAnsibleIniInventory(source);
  let yaml: ReturnType<typeof parseYamlSource>;
  try {
    yaml = parseYamlSource(source);
  } catch (error) {
    if (looksLikeIni(source.text)) return parseAnsibleIniInventory(source);
    throw error;
  }
  const raw = yamlValue(yaml);
  const isMapping = raw !== null && typeof raw === 'object' && !Array.isArray(raw);
  if (!isMapping && looksLikeIni(source.text)) return parseAnsibleIniInventory(source);
  if (!isMapping) {
    throw new ConfigError(
      'the inventory must be a mapping with a hosts: section (or an Ansible inventory)',
      locatePath(yaml, []),
      'start from inventory/example-inventory.yml',
    );
  }
  return yamlInventoryFormat(raw as Record<string, unknown>) === 'balena-migrate'
    ? parseNativeInventory(yaml, raw)
    : parseAnsibleYamlInventory(yaml, raw);
}
