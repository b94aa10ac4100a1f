// Reads an Ansible YAML inventory (`all: { hosts, vars, children }`, nested to any depth)
// as it is.
import { z } from 'zod';
import { AnsibleInventoryBuilder } from './ansible-builder.ts';
import type { InventoryDocument } from './inventory-types.ts';
import type { Path } from './validate.ts';
import { validateWith } from './validate.ts';
import { keyNodeAt, locatePath, nodeLocation, type YamlSource } from './yaml-source.ts';

const Vars = z.record(z.string(), z.unknown(), { error: 'must be a mapping of variable: value' });

interface AnsibleGroupShape {
  hosts?: Record<string, Record<string, unknown> | null> | null;
  vars?: Record<string, unknown> | null;
  children?: Record<string, AnsibleGroupShape | null> | null;
}

const AnsibleGroup: z.ZodType<AnsibleGroupShape | null> = z.lazy(() =>
  z
    .strictObject({
      hosts: z
        .record(z.string(), Vars.nullable(), {
          error: 'must be a mapping of host name: variables (write `nuc-1:` on a line of its own)',
        })
        .nullable()
        .optional(),
      vars: Vars.nullable().optional(),
      children: z
        .record(z.string(), AnsibleGroup, { error: 'must be a mapping of group name: group' })
        .nullable()
        .optional(),
    })
    .nullable(),
);

const AnsibleFile = z.record(z.string(), AnsibleGroup, { error: 'must be a mapping of group name: group' });

export function parseAnsibleYamlInventory(yaml: YamlSource, raw: unknown): InventoryDocument {
  const locate = (at: Path, key?: string) =>
    key === undefined ? locatePath(yaml, at) : nodeLocation(yaml, keyNodeAt(yaml, at, key));
  const file = validateWith(AnsibleFile, raw, { locate });
  const builder = new AnsibleInventoryBuilder();
  const keyAt = (at: Path, key: string) => nodeLocation(yaml, keyNodeAt(yaml, at, key));
  const visit = (name: string, group: AnsibleGroupShape | null, at: Path) => {
    builder.group(name, keyAt(at.slice(0, -1), name));
    for (const [host, vars] of Object.entries(group?.hosts ?? {})) {
      const hostAt = [...at, 'hosts', host];
      builder.host(host, keyAt([...at, 'hosts'], host));
      builder.member(name, host, keyAt([...at, 'hosts'], host));
      for (const [key, value] of Object.entries(vars ?? {})) {
        builder.hostVar(host, key, { value, source: locatePath(yaml, [...hostAt, key]) });
      }
    }
    for (const [key, value] of Object.entries(group?.vars ?? {})) {
      builder.groupVar(name, key, { value, source: locatePath(yaml, [...at, 'vars', key]) });
    }
    for (const [child, childGroup] of Object.entries(group?.children ?? {})) {
      builder.child(name, child, keyAt([...at, 'children'], child));
      visit(child, childGroup, [...at, 'children', child]);
    }
  };
  for (const [name, group] of Object.entries(file)) visit(name, group, [name]);
  return builder.build(yaml.file, 'ansible-yaml');
}
