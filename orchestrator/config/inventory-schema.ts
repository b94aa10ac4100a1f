// The shape of our own inventory format (see inventory/example-inventory.yml). Unknown
// keys are errors so a misspelt setting never silently falls back to a default.
import { z } from 'zod';
import { Address, Become, FreeVars, LocalPath, Port, RemoteDir, User } from './fields.ts';

/** Host and group names: no spaces, and none of the characters --limit gives meaning to. */
const InventoryName = z
  .string()
  .regex(/^[A-Za-z0-9_.:][A-Za-z0-9_.:-]*$/, { error: 'must use only letters, digits and . _ - :' });

const JumpSpec = z
  .string({ error: 'must be a host name, user@host:port, or none' })
  .regex(/^\S+$/, { error: 'must not contain spaces' })
  .meta({
    description: 'an inventory host or jump host name, user@host:port, a comma-separated chain, or none',
  });

const connection = {
  port: Port.optional().meta({ description: 'SSH port (default 22, or Port from ~/.ssh/config)' }),
  user: User.optional().meta({ description: 'SSH user (default root, or User from ~/.ssh/config)' }),
  identityFile: LocalPath.optional().meta({
    description: 'private key to offer first, relative to this file',
  }),
  jump: JumpSpec.optional(),
};

const migration = {
  become: Become.optional().meta({
    description: 'sudo: run as root through sudo; none: the user is root (default)',
  }),
  workDir: RemoteDir.optional().meta({ description: "overrides balena-migrate.yml's workDir" }),
  image: LocalPath.optional().meta({ description: 'balenaOS image for these hosts, relative to this file' }),
  configJson: LocalPath.optional().meta({
    description: 'config.json for these hosts, relative to this file',
  }),
  vars: FreeVars.optional().meta({ description: 'free-form variables, merged defaults < groups < host' }),
};

const address = Address.optional().meta({ description: 'IP address or DNS name (default: the host name)' });

/** Settings a group (or `defaults`) may give: everything except a host's own address. */
const GroupSettings = z.strictObject({ ...connection, ...migration });

const HostEntry = z.strictObject({ address, ...connection, ...migration }).nullable();

const JumpHostEntry = z.strictObject({ address, ...connection }).nullable();

const NameList = z.array(InventoryName, { error: 'must be a list of names, e.g. [nuc-1, nuc-2]' });

const GroupEntry = z
  .strictObject({
    hosts: NameList.optional().meta({ description: 'host names in this group' }),
    children: NameList.optional().meta({ description: 'groups nested in this group' }),
    vars: GroupSettings.optional().meta({ description: 'settings for every host in the group' }),
  })
  .nullable();

const mapping = { error: 'must be a mapping of name: settings' };

export const InventoryFile = z
  .strictObject({
    defaults: GroupSettings.optional().meta({ description: 'settings for every host' }),
    hosts: z.record(InventoryName, HostEntry, mapping).meta({ description: 'the hosts to migrate, by name' }),
    groups: z.record(InventoryName, GroupEntry, mapping).optional(),
    jumpHosts: z
      .record(InventoryName, JumpHostEntry, mapping)
      .optional()
      .meta({ description: 'hosts used only to reach others (ProxyJump); never migrated' }),
  })
  .meta({ id: 'Inventory', title: 'balena-migrate inventory' });

export type InventoryFile = z.output<typeof InventoryFile>;

/** Settings keys a host may carry, shared with the Ansible mapping. */
export const HostSettingsSchema = z.strictObject({ address, ...connection, ...migration });

export const INVENTORY_PATH_HINTS: Readonly<Record<string, string>> = {
  hosts: 'write one host per line under hosts:, e.g.  nuc-1: { address: 192.0.2.10 }',
  groups: 'write one group per line under groups:, e.g.  lab: { hosts: [nuc-1] }',
};

export const INVENTORY_HINTS: Readonly<Record<string, string>> = {
  port: 'use a number such as 22',
  address: 'use an IP address such as 192.0.2.10 or a DNS name such as nuc-1.lab.example',
  become: 'use sudo (log in as a normal user, run as root through sudo) or none (log in as root)',
  workDir: 'use an absolute path such as /var/tmp/balena-migrate',
  user: 'use the login name, e.g. root or admin',
  jump: 'use the name of another host or jump host, or user@host:port',
  vars: 'write a mapping, e.g. vars: { site: east }',
};
