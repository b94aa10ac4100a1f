// Command-line flags shared by the commands, and their mapping onto balena-migrate.yml
// settings: every config option that makes sense on a command line has a flag, and a flag
// wins over the file.
import { type Command, Option } from 'commander';
import { type AgentFlags, agentOverridesFromFlags } from '../agent/flags.ts';
import type { ConfigOverrides } from '../config/migration-config.ts';
import { CONFIG_DEFAULTS as D } from '../config/migration-config-schema.ts';

export interface CommonFlags extends AgentFlags {
  inventory?: string;
  config?: string;
  host?: string[];
  limit?: string;
  image?: string;
  configJson?: string;
  workDir?: string;
  allowDeviceTypeMismatch?: boolean;
  mode?: 'standalone' | 'pretend' | 'agent';
  kernel?: string;
  failMode?: 'reboot' | 'rescue-shell';
  busybox?: string;
  ramMargin?: string;
  stage2Pretend?: boolean;
  bootManager?: 'auto' | 'grub' | 'efi';
  windowsFallback?: 'none' | 'startup-nsh';
  knownHosts?: string;
  acceptNewHostKeys?: boolean;
  identity?: string[];
  agent?: boolean;
  connectTimeout?: string;
  verifyTimeout?: string;
  balenaPort?: string;
  runsDir?: string;
  concurrency?: string;
  waves?: string;
  maxFailures?: string;
  json?: boolean;
  resume?: string;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function addTargetFlags(cmd: Command): Command {
  return cmd
    .option('-i, --inventory <file>', 'inventory: ours (YAML) or an Ansible inventory (YAML or INI)')
    .option('-c, --config <file>', 'migration config (default: ./balena-migrate.yml if it exists)')
    .option('--host <[user@]address[:port]>', 'a host to work on besides the inventory (repeatable)', collect)
    .option('-l, --limit <pattern>', 'select hosts: name, group, glob, a,b, !exclude, or @file');
}

export function addMigrationFlags(cmd: Command): Command {
  return cmd
    .option(
      '--image <file>',
      'balenaOS image: .img, .img.gz, .img.xz or .zip (told apart by content, streamed, never unpacked on disk)',
    )
    .option('--config-json <file>', "the devices' config.json")
    .option('--work-dir <dir>', `absolute working directory on the hosts (default ${D.workDir})`)
    .option(
      '--allow-device-type-mismatch',
      "plan even when the image or config.json is for another device type than the host's hardware",
    )
    .addOption(
      new Option(
        '--mode <mode>',
        'standalone (default), pretend (upload and verify, no boot change), or agent (image and config.json from balena)',
      ).choices(['standalone', 'pretend', 'agent']),
    )
    .option(
      '--kernel <host|file>',
      "stage2 kernel: 'host' (default: the host's own installed kernel) or a migration kernel file",
    )
    .addOption(
      new Option(
        '--fail-mode <mode>',
        `stage2 on a failure before writing: reboot into the old OS or rescue-shell (default ${D.stage2.failMode})`,
      ).choices(['reboot', 'rescue-shell']),
    )
    .option(
      '--busybox <file>',
      `static busybox for the stage2 initramfs, built for the hosts' architecture (default ${D.stage2.busybox})`,
    )
    .option(
      '--ram-margin <MiB>',
      `RAM stage2 keeps free beyond image + config + network files + log (default ${D.stage2.ramMarginMiB})`,
    )
    .option(
      '--stage2-pretend',
      'stage2 rehearses on the device: every check, no write, back to the old OS; the host ends ready',
    )
    .addOption(
      new Option(
        '--boot-manager <name>',
        'x86 hosts: boot stage2 once through grub (grub-reboot), efi (a UEFI entry + BootNext), or auto (default: grub unless the host is UEFI and GRUB cannot boot stage2 once)',
      ).choices(['auto', 'grub', 'efi']),
    )
    .addOption(
      new Option(
        '--windows-fallback <name>',
        "Windows hosts whose firmware ignores BootNext: startup-nsh also moves Windows' boot files aside and boots stage2 through startup.nsh (stage2 moves them back first); default none",
      ).choices(['none', 'startup-nsh']),
    )
    .option(
      '--known-hosts <file>',
      `known_hosts file that verifies host keys, hashed entries too (default ${D.ssh.knownHostsFile})`,
    )
    .option('--accept-new-host-keys', 'trust and record the key of a host seen for the first time')
    .option('--identity <file>', 'private key to offer (repeatable)', collect)
    .option('--no-agent', 'do not use ssh-agent (SSH_AUTH_SOCK)')
    .option(
      '--connect-timeout <seconds>',
      `give up connecting after this many seconds (default ${D.ssh.connectTimeoutSeconds})`,
    )
    .option(
      '--verify-timeout <seconds>',
      `seconds to wait for balenaOS or the old OS after the reboot (default ${D.verify.timeoutSeconds})`,
    )
    .option('--balena-port <port>', `balenaOS's SSH port (default ${D.verify.balenaPort})`)
    .option('--runs-dir <dir>', `where run directories go (default ${D.run.runsDir})`);
}

export function addFleetFlags(cmd: Command): Command {
  return cmd
    .option('--concurrency <n>', `hosts at once (default ${D.run.concurrency})`)
    .option('--waves <spec>', 'rollout waves, e.g. 1,10%,100%')
    .option(
      '--max-failures <n|p%>',
      'failure budget: no new host starts once it is spent (default for run: stop at the first failure)',
    )
    .option('--json', 'one JSON line per event on stderr instead of bars or text lines')
    .option(
      '--resume <rundir>',
      'continue the run in this run directory: hosts already done are kept, the others continue',
    );
}

function num(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  // Let the schema produce the error for a non-number, with the flag named.
  return Number.isFinite(n) ? n : (value as unknown as number);
}

/** The flags as a partial balena-migrate.yml, validated by the same schema as the file. */
export function overridesFromFlags(f: CommonFlags): ConfigOverrides {
  const o: ConfigOverrides = {};
  if (f.image !== undefined) o.image = f.image;
  if (f.configJson !== undefined) o.configJson = f.configJson;
  if (f.workDir !== undefined) o.workDir = f.workDir;
  if (f.allowDeviceTypeMismatch) o.allowDeviceTypeMismatch = true;
  if (f.mode !== undefined) o.mode = f.mode;
  const stage2: NonNullable<ConfigOverrides['stage2']> = {};
  if (f.kernel !== undefined) stage2.kernel = f.kernel;
  if (f.failMode !== undefined) stage2.failMode = f.failMode;
  if (f.busybox !== undefined) stage2.busybox = f.busybox;
  if (f.ramMargin !== undefined) stage2.ramMarginMiB = num(f.ramMargin);
  if (f.stage2Pretend) stage2.pretend = true;
  if (f.bootManager !== undefined) stage2.bootManager = f.bootManager;
  if (f.windowsFallback !== undefined) stage2.windowsFallback = f.windowsFallback;
  if (Object.keys(stage2).length) o.stage2 = stage2;
  const ssh: NonNullable<ConfigOverrides['ssh']> = {};
  if (f.knownHosts !== undefined) ssh.knownHostsFile = f.knownHosts;
  if (f.acceptNewHostKeys) ssh.acceptNewHostKeys = true;
  if (f.identity?.length) ssh.identityFiles = f.identity;
  if (f.agent === false) ssh.useAgent = false;
  if (f.connectTimeout !== undefined) ssh.connectTimeoutSeconds = num(f.connectTimeout);
  if (Object.keys(ssh).length) o.ssh = ssh;
  const verify: NonNullable<ConfigOverrides['verify']> = {};
  if (f.verifyTimeout !== undefined) verify.timeoutSeconds = num(f.verifyTimeout);
  if (f.balenaPort !== undefined) verify.balenaPort = num(f.balenaPort);
  if (Object.keys(verify).length) o.verify = verify;
  const run: NonNullable<ConfigOverrides['run']> = {};
  if (f.runsDir !== undefined) run.runsDir = f.runsDir;
  if (f.concurrency !== undefined) run.concurrency = num(f.concurrency);
  if (Object.keys(run).length) o.run = run;
  const agent = agentOverridesFromFlags(f);
  if (agent) o.agent = agent;
  return o;
}
