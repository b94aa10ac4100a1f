// The shape of balena-migrate.yml: every field optional, unknown keys rejected. Defaults
// live in CONFIG_DEFAULTS (and are shown in the JSON schema) rather than in zod, so the
// same schema also checks partial overrides from command-line flags.
import { z } from 'zod';
import { AGENT_HINTS, AgentSettings } from '../agent/config-schema.ts';
import { LocalPath, NonNegativeInt, Port, PositiveInt, RemoteDir, User } from './fields.ts';

export const MODES = ['standalone', 'pretend', 'agent'] as const;
export type Mode = (typeof MODES)[number];

export const FAIL_MODES = ['reboot', 'rescue-shell'] as const;
export type FailMode = (typeof FAIL_MODES)[number];

/** How stage2 is booted once on x86 hosts (orchestrator/platform/efi.ts). */
export const BOOT_MANAGER_SETTINGS = ['auto', 'grub', 'efi'] as const;
export type BootManagerSetting = (typeof BOOT_MANAGER_SETTINGS)[number];
export const WINDOWS_FALLBACKS = ['none', 'startup-nsh'] as const;

/** Defaults as the operator would write them; paths are resolved when loading. */
export const CONFIG_DEFAULTS = {
  mode: 'standalone',
  workDir: '/var/tmp/balena-migrate',
  allowDeviceTypeMismatch: false,
  stage2: { kernel: 'host', failMode: 'reboot', busybox: '/bin/busybox', ramMarginMiB: 64, pretend: false },
  network: { wifi: 'all' as 'all' | 'none' | string[], requireNetwork: true, extraFiles: [] as string[] },
  ssh: {
    knownHostsFile: '~/.ssh/known_hosts',
    acceptNewHostKeys: false,
    identityFiles: [] as string[],
    useAgent: true,
    connectTimeoutSeconds: 20,
    keepaliveSeconds: 10,
    sshConfigFile: '~/.ssh/config',
  },
  verify: { timeoutSeconds: 900, balenaPort: 22222, balenaUser: 'root' },
  run: { runsDir: './runs', concurrency: 10 },
} as const;

const d = CONFIG_DEFAULTS;
const flag = z.boolean({ error: 'must be true or false' });
const seconds = PositiveInt;

function field<T extends z.ZodType>(schema: T, description: string, defaultValue?: unknown) {
  const meta = defaultValue === undefined ? { description } : { description, default: defaultValue };
  return schema.optional().meta(meta);
}

const Stage2Settings = z.strictObject({
  kernel: field(
    LocalPath,
    "'host' to boot stage2 with the host's own kernel, or the path of a migration kernel",
    d.stage2.kernel,
  ),
  failMode: field(
    z.enum(FAIL_MODES, { error: `must be one of: ${FAIL_MODES.join(', ')}` }),
    'what stage2 does when it fails before writing: reboot into the old OS, or stop in a rescue shell',
    d.stage2.failMode,
  ),
  busybox: field(
    LocalPath,
    "static busybox binary for the initramfs (Debian's busybox-static installs /bin/busybox)",
    d.stage2.busybox,
  ),
  ramMarginMiB: field(
    NonNegativeInt,
    'RAM (MiB) kept free beyond the image when stage2 copies it to RAM',
    64,
  ),
  pretend: field(
    flag,
    'stage2 rehearses on the device: every check (RAM, hashes, decompression, the boot partition), no write, then it boots the old OS again; the host ends ready with the stage2 log',
    false,
  ),
  logDevice: field(
    z
      .string({ error: 'must be LABEL=..., UUID=... or PARTUUID=...' })
      .regex(/^(LABEL|UUID|PARTUUID)=[A-Za-z0-9._-]+$/, {
        error: 'must be LABEL=..., UUID=... or PARTUUID=...',
      }),
    'a filesystem (not on the install disk) where stage2 also saves its log, e.g. LABEL=BM-LOGS on a USB stick',
  ),
  bootManager: field(
    z.enum(BOOT_MANAGER_SETTINGS, { error: `must be one of: ${BOOT_MANAGER_SETTINGS.join(', ')}` }),
    'x86 hosts: how stage2 is booted once: grub (grub-reboot), efi (a UEFI boot entry started once with BootNext), or auto: GRUB, unless the host is UEFI and GRUB cannot boot stage2 once (grubenv on LVM, md RAID, btrfs)',
    'auto',
  ),
  windowsFallback: field(
    z.enum(WINDOWS_FALLBACKS, { error: `must be one of: ${WINDOWS_FALLBACKS.join(', ')}` }),
    "Windows hosts whose firmware ignores BootNext: startup-nsh also moves Windows' own boot files into \\efi_backup and boots stage2 through the UEFI shell's startup.nsh (stage2 moves them back first); none (default) never touches them",
    'none',
  ),
});

const NetworkSettings = z.strictObject({
  wifi: field(
    z.union(
      [
        z.enum(['all', 'none']),
        z.array(z.string().min(1).max(32), { error: 'must be all, none, or a list of SSIDs' }),
      ],
      { error: 'must be all, none, or a list of SSIDs' },
    ),
    "which of the old OS's Wi-Fi networks balenaOS gets: all, none, or a list of SSIDs",
    'all',
  ),
  extraFiles: field(
    z.array(LocalPath, { error: 'must be a list of keyfile paths' }),
    'NetworkManager keyfiles (.nmconnection) to put on the devices as well, relative to this file',
    [],
  ),
  requireNetwork: field(
    flag,
    'refuse a host when balenaOS would not reach the network with what is carried (true), or only warn (false)',
    true,
  ),
});

const SshSettings = z.strictObject({
  knownHostsFile: field(LocalPath, 'known_hosts file used to verify host keys', d.ssh.knownHostsFile),
  acceptNewHostKeys: field(flag, 'trust and record the key of a host seen for the first time', false),
  identityFiles: field(
    z.array(LocalPath, { error: 'must be a list of key file paths' }),
    'private keys offered to every host',
    [],
  ),
  useAgent: field(flag, 'offer the keys held by ssh-agent (SSH_AUTH_SOCK)', true),
  connectTimeoutSeconds: field(seconds, 'give up connecting after this many seconds', 20),
  keepaliveSeconds: field(seconds, 'send an SSH keepalive this often', 10),
  sshConfigFile: field(
    LocalPath,
    'OpenSSH client config read for HostName, User, Port, IdentityFile, ProxyJump (a missing default is fine)',
    d.ssh.sshConfigFile,
  ),
});

const VerifySettings = z.strictObject({
  timeoutSeconds: field(seconds, 'how long to wait for balenaOS (or the old OS) to come back', 900),
  balenaPort: field(Port, "balenaOS's SSH port", 22222),
  balenaUser: field(User, 'user for SSH to balenaOS', 'root'),
});

const RunSettings = z.strictObject({
  runsDir: field(LocalPath, 'where run state and reports go (relative to this file)', d.run.runsDir),
  concurrency: field(PositiveInt, 'how many hosts are migrated at once', 10),
});

export const MigrationConfigFile = z
  .strictObject({
    mode: field(
      z.enum(MODES, { error: `must be one of: ${MODES.join(', ')}` }),
      'standalone: migrate with a local image; pretend: do everything except reboot and flash; agent: get the image and each config.json from the balena backend',
      d.mode,
    ),
    image: field(LocalPath, 'balenaOS image (.img or .img.gz), relative to this file'),
    configJson: field(LocalPath, 'config.json for the devices, relative to this file'),
    workDir: field(RemoteDir, 'absolute working directory on each host', d.workDir),
    allowDeviceTypeMismatch: field(
      flag,
      "plan a host even when the image (its device-type.json) or config.json is for another device type than the host's hardware",
      false,
    ),
    stage2: field(Stage2Settings, 'the migration environment that runs from RAM'),
    network: field(
      NetworkSettings,
      "the old OS's network settings carried to balenaOS as NetworkManager keyfiles",
    ),
    ssh: field(SshSettings, 'how to reach the hosts'),
    verify: field(VerifySettings, 'how the outcome is checked after the reboot'),
    run: field(RunSettings, 'run bookkeeping'),
    agent: field(AgentSettings, 'agent mode: the balena backend, fleet and balenaOS version'),
  })
  .meta({ id: 'MigrationConfig', title: 'balena-migrate.yml' });

/** What the file (or the flags) may say: everything optional. */
export type ConfigOverrides = z.input<typeof MigrationConfigFile>;

/** Advice shown with a bad value, by field name. */
export const CONFIG_PATH_HINTS: Readonly<Record<string, string>> = {
  '': 'write settings as key: value lines; start from inventory/balena-migrate.example.yml',
};

export const CONFIG_HINTS: Readonly<Record<string, string>> = {
  ...AGENT_HINTS,
  mode: `use one of: ${MODES.join(', ')}`,
  workDir: 'use an absolute path such as /var/tmp/balena-migrate',
  failMode: `use one of: ${FAIL_MODES.join(', ')}`,
  logDevice: 'name a filesystem as stage2 finds it, e.g. LABEL=BM-LOGS',
  bootManager: `use one of: ${BOOT_MANAGER_SETTINGS.join(', ')}`,
  windowsFallback: `use one of: ${WINDOWS_FALLBACKS.join(', ')} (startup-nsh only for firmware that ignores BootNext)`,
  wifi: 'write all, none, or a list such as [home-wifi, shop-floor]',
  balenaPort: 'balenaOS listens on 22222',
  concurrency: 'use a whole number such as 10',
  identityFiles: 'write a list, e.g. identityFiles: [~/.ssh/fleet_ed25519]',
};
