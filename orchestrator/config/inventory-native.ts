// Reads our own inventory format (defaults / hosts / groups / jumpHosts) into the declared
// form shared by all formats, remembering where each value was written.
import { ConfigError } from '../errors.ts';
import { INVENTORY_HINTS, INVENTORY_PATH_HINTS, InventoryFile } from './inventory-schema.ts';
import type {
  DeclaredGroup,
  DeclaredHost,
  DeclaredSettings,
  HostSettings,
  InventoryDocument,
  Reference,
} from './inventory-types.ts';
import type { Path } from './validate.ts';
import { validateWith } from './validate.ts';
import { keyNodeAt, locatePath, nodeLocation, type YamlSource } from './yaml-source.ts';

export function parseNativeInventory(yaml: YamlSource, raw: unknown): InventoryDocument {
  const locate = (at: Path, key?: string) =>
    key === undefined ? locatePath(yaml, at) : nodeLocation(yaml, keyNodeAt(yaml, at, key));
  const file = validateWith(InventoryFile, raw, {
    locate,
    hints: INVENTORY_HINTS,
    pathHints: INVENTORY_PATH_HINTS,
  });
  if (Object.keys(file.hosts).length === 0) {
    throw new ConfigError(
      'the inventory defines no hosts',
      locatePath(yaml, ['hosts']),
      'add hosts under hosts:, e.g.  nuc-1: { address: 192.0.2.10 }',
    );
  }
  const settings = (values: HostSettings | null | undefined, at: Path): DeclaredSettings => ({
    values: { ...values },
    at: Object.fromEntries(
      Object.keys(values ?? {}).map((key) => [key, locatePath(yaml, [...at, key])]),
    ) as DeclaredSettings['at'],
  });
  const declare = (
    section: 'hosts' | 'jumpHosts',
    name: string,
    values: HostSettings | null,
  ): DeclaredHost => ({
    name,
    source: nodeLocation(yaml, keyNodeAt(yaml, [section], name)),
    settings: settings(values, [section, name]),
  });
  const references = (names: string[] | undefined, at: Path): Reference[] =>
    (names ?? []).map((name, index) => ({ name, source: locatePath(yaml, [...at, index]) }));
  const groups: DeclaredGroup[] = Object.entries(file.groups ?? {}).map(([name, group]) => ({
    name,
    source: nodeLocation(yaml, keyNodeAt(yaml, ['groups'], name)),
    hosts: references(group?.hosts, ['groups', name, 'hosts']),
    children: references(group?.children, ['groups', name, 'children']),
    settings: settings(group?.vars, ['groups', name, 'vars']),
  }));
  return {
    file: yaml.file,
    format: 'balena-migrate',
    defaults: settings(file.defaults, ['defaults']),
    hosts: Object.entries(file.hosts).map(([name, values]) => declare('hosts', name, values)),
    groups,
    jumpHosts: Object.entries(file.jumpHosts ?? {}).map(([name, values]) =>
      declare('jumpHosts', name, values),
    ),
  };
}
