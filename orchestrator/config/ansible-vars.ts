// Maps Ansible connection variables (ansible_host, ansible_port, ...) onto our host
// settings, so an existing Ansible inventory is used as it is. Unmapped variables are
// kept as free-form vars; password variables are dropped so secrets never travel further.
import { ConfigError } from '../errors.ts';
import { HostSettingsSchema, INVENTORY_HINTS } from './inventory-schema.ts';
import type { DeclaredSettings, HostSettings, SettingName } from './inventory-types.ts';
import type { SourceLocation } from './source-location.ts';
import { validateWith } from './validate.ts';

/** Our setting, and the Ansible variables that give it (first present wins). */
const ALIASES: ReadonlyArray<[SettingName, readonly string[]]> = [
  ['address', ['ansible_host', 'ansible_ssh_host']],
  ['port', ['ansible_port', 'ansible_ssh_port']],
  ['user', ['ansible_user', 'ansible_ssh_user']],
  ['identityFile', ['ansible_ssh_private_key_file', 'ansible_private_key_file']],
  ['workDir', ['balena_migrate_work_dir']],
  ['image', ['balena_migrate_image']],
  ['configJson', ['balena_migrate_config_json']],
];

const SECRETS = new Set([
  'ansible_password',
  'ansible_ssh_pass',
  'ansible_ssh_password',
  'ansible_become_pass',
  'ansible_become_password',
  'ansible_sudo_pass',
  'ansible_sudo_password',
]);

const SSH_ARGS = ['ansible_ssh_common_args', 'ansible_ssh_extra_args'];
const HANDLED = new Set([
  ...ALIASES.flatMap(([, names]) => names),
  ...SSH_ARGS,
  'ansible_become',
  'ansible_sudo',
  'ansible_become_method',
]);

export interface AnsibleVar {
  value: unknown;
  /** where the value is written */
  source: SourceLocation;
}

/** Settings from one scope's Ansible variables (a host line, a group's vars, `all`). */
export function settingsFromAnsibleVars(vars: ReadonlyMap<string, AnsibleVar>): DeclaredSettings {
  const values: Record<string, unknown> = {};
  const at: DeclaredSettings['at'] = {};
  const origin: Partial<Record<SettingName, string>> = {};
  for (const [setting, names] of ALIASES) {
    const name = names.find((candidate) => vars.has(candidate));
    if (!name) continue;
    const found = vars.get(name)!;
    values[setting] = setting === 'port' ? asNumber(found.value) : found.value;
    at[setting] = found.source;
    origin[setting] = name;
  }
  const become = becomeSetting(vars);
  if (become) {
    values.become = become.value;
    at.become = become.source;
    origin.become = 'ansible_become';
  }
  for (const name of SSH_ARGS) {
    const found = vars.get(name);
    const jump = found && proxyJumpFrom(String(found.value), name, found.source);
    if (found && jump) {
      values.jump = jump;
      at.jump = found.source;
      origin.jump = name;
    }
  }
  const free = [...vars].filter(([name]) => !HANDLED.has(name) && !SECRETS.has(name));
  if (free.length > 0) {
    values.vars = Object.fromEntries(free.map(([name, variable]) => [name, variable.value]));
    at.vars = free[0]![1].source;
  }
  const checked = validateWith(HostSettingsSchema, values, {
    locate: (path) => at[path[0] as SettingName] ?? { file: '' },
    hints: INVENTORY_HINTS,
    label: (path) => origin[path[0] as SettingName] ?? String(path[0]),
  });
  return { values: checked as HostSettings, at };
}

/** INI values are text; Ansible templating turns "22" into a number, and so do we. */
function asNumber(value: unknown): unknown {
  return typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value.trim()) : value;
}

const TRUE = /^(true|yes|on|1)$/i;
const FALSE = /^(false|no|off|0)$/i;

function becomeSetting(vars: ReadonlyMap<string, AnsibleVar>): AnsibleVar | undefined {
  const method = vars.get('ansible_become_method');
  if (method && String(method.value) !== 'sudo') {
    throw new ConfigError(
      `ansible_become_method '${String(method.value)}' is not supported`,
      method.source,
      'balena-migrate becomes root with sudo only: set ansible_become_method=sudo, or log in as root',
    );
  }
  const flag = vars.get('ansible_become') ?? vars.get('ansible_sudo');
  if (!flag) return undefined;
  const text = String(flag.value);
  if (TRUE.test(text)) return { value: 'sudo', source: flag.source };
  if (FALSE.test(text)) return { value: 'none', source: flag.source };
  throw new ConfigError(
    `ansible_become must be true or false (got ${JSON.stringify(flag.value)})`,
    flag.source,
    'write ansible_become=true to run as root through sudo',
  );
}

/** The ProxyJump in `-J x` or `-o ProxyJump=x` ssh arguments, if any. */
function proxyJumpFrom(args: string, name: string, source: SourceLocation): string | undefined {
  if (/ProxyCommand/i.test(args)) {
    throw new ConfigError(
      `${name} uses ProxyCommand, which balena-migrate cannot follow`,
      source,
      'use ProxyJump instead, e.g. -o ProxyJump=user@bastion',
    );
  }
  const match = /(?:^|\s)-J\s*(\S+)|ProxyJump[=\s]\s*([^\s'"]+)/i.exec(args);
  return match ? (match[1] ?? match[2]) : undefined;
}
