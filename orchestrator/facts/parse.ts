// Turns what remote-payload/probe.sh prints into validated Facts. Pure: text in, data out.
//
// The probe prints one fact per line: `KEY<TAB>VALUE`, or `KEY<TAB>f=v<TAB>f=v...` for
// records. Values escape `\\ \t \n \r` and `\NNN` (octal, as the kernel writes mount paths).
// The output must end with `end<TAB>ok`, so a probe that died half-way is not mistaken for a
// host that has nothing more to say.
import { type BlockDevice, type DirLocation, Facts, type Mount } from './facts.ts';

/** The probe output could not be understood; `line` is 1-based, null when no single line is at fault. */
export class ProbeParseError extends Error {
  override name = 'ProbeParseError';
  constructor(
    message: string,
    readonly line: number | null,
  ) {
    super(message);
  }
}

type KeyKind = 'scalar' | 'list' | 'record';

/** Every key the probe may print, and how often. Unknown keys are an error: probe and parser ship together. */
const KEYS: Record<string, KeyKind> = {
  probe_version: 'scalar',
  hostname: 'scalar',
  arch: 'scalar',
  os_release: 'list',
  kernel_release: 'scalar',
  kernel_modules_dir: 'scalar',
  kernel_image: 'scalar',
  kernel_image_size: 'scalar',
  kernel_image_efi_stub: 'scalar',
  kernel_cmdline: 'scalar',
  firmware: 'scalar',
  secure_boot: 'scalar',
  dmi_sys_vendor: 'scalar',
  dmi_product_name: 'scalar',
  dmi_board_name: 'scalar',
  dt_model: 'scalar',
  dt_compatible: 'list',
  cpu_model: 'scalar',
  cpu_revision: 'scalar',
  cpu_hardware: 'scalar',
  dt_revision: 'scalar',
  bootloader_timestamp: 'scalar',
  mem_total_kb: 'scalar',
  mem_available_kb: 'scalar',
  mem_free_kb: 'scalar',
  id_tool: 'scalar',
  blockdev: 'record',
  mount: 'record',
  dir: 'record',
  storage_module: 'list',
  grub_mkconfig: 'scalar',
  grub_update: 'scalar',
  grub_reboot: 'scalar',
  grub_editenv: 'scalar',
  grub_dir: 'scalar',
  grub_env_file: 'scalar',
  grub_env_hex: 'scalar',
  grub_env_link: 'scalar',
  grub_cfg_next_entry: 'scalar',
  grub_env_boot_writable: 'scalar',
  grub_env_boot_reason: 'scalar',
  grub_d_dir: 'scalar',
  tool_setsid: 'scalar',
  tool_flock: 'scalar',
  tool_sha256sum: 'scalar',
  tool_efibootmgr: 'scalar',
  tool_curl: 'scalar',
  tool_wget: 'scalar',
  warning: 'list',
  netif: 'record',
  netroute: 'record',
  net_service: 'list',
  watchdog: 'record',
  watchdog_systemd: 'scalar',
  watchdog_daemon: 'scalar',
  bootfile: 'record',
  uboot_raw: 'record',
  dtb_dir: 'scalar',
  dtb_name: 'list',
  efi_vars_writable: 'scalar',
  efi_boot_current: 'scalar',
  efi_boot_next: 'scalar',
  efi_boot_order: 'scalar',
  efi_boot_entry: 'record',
  end: 'scalar',
};

/** Required fields of each record kind. */
const RECORD_FIELDS: Record<string, string[]> = {
  blockdev: ['name', 'type', 'size'],
  mount: ['source', 'target', 'fstype', 'options'],
  dir: ['role', 'path', 'exists', 'mountpoint', 'device', 'fstype', 'free_kb', 'writable'],
  netif: ['name', 'kind'],
  netroute: ['dev'],
  watchdog: ['device'],
  bootfile: ['path', 'size'],
  uboot_raw: ['device', 'offset', 'format'],
  efi_boot_entry: ['num', 'active', 'label'],
};

interface Entry {
  line: number;
  value: string;
}
interface RecordEntry {
  line: number;
  fields: Map<string, string>;
}

/** Decodes one escaped value; `where` names the line for the error. */
export function unescapeProbeValue(raw: string, where = 'value'): string {
  if (!raw.includes('\\')) return raw;
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const next = raw[i + 1];
    if (next === '\\') out += '\\';
    else if (next === 't') out += '\t';
    else if (next === 'n') out += '\n';
    else if (next === 'r') out += '\r';
    else if (/^[0-7]{3}$/.test(raw.slice(i + 1, i + 4))) {
      out += String.fromCharCode(Number.parseInt(raw.slice(i + 1, i + 4), 8));
      i += 2;
    } else {
      throw new Error(`${where}: bad escape ${JSON.stringify(raw.slice(i, i + 4))}`);
    }
    i += 1;
  }
  return out;
}

function excerpt(line: string): string {
  return JSON.stringify(line.length > 100 ? `${line.slice(0, 100)}...` : line);
}

/** Splits probe output into scalars, lists and records, checking every line on the way. */
function readLines(text: string): {
  scalars: Map<string, Entry>;
  lists: Map<string, Entry[]>;
  records: Map<string, RecordEntry[]>;
} {
  const scalars = new Map<string, Entry>();
  const lists = new Map<string, Entry[]>();
  const records = new Map<string, RecordEntry[]>();
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  let ended = false;
  lines.forEach((raw, index) => {
    const n = index + 1;
    const text = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const fail = (why: string): never => {
      throw new ProbeParseError(`probe output line ${n}: ${why}: ${excerpt(text)}`, n);
    };
    if (text === '' || text.startsWith('#')) return;
    if (ended) fail('text after the `end` line');
    const tab = text.indexOf('\t');
    if (tab <= 0) fail('expected KEY<TAB>VALUE');
    const key = text.slice(0, tab);
    const rest = text.slice(tab + 1);
    const kind = KEYS[key];
    if (!kind) fail(`unknown key ${JSON.stringify(key)}`);
    const decode = (v: string): string => {
      try {
        return unescapeProbeValue(v);
      } catch (e) {
        return fail((e as Error).message);
      }
    };
    if (kind === 'record') {
      const fields = new Map<string, string>();
      for (const part of rest.split('\t')) {
        const eq = part.indexOf('=');
        if (eq <= 0) fail(`record field ${JSON.stringify(part)} is not NAME=VALUE`);
        const name = part.slice(0, eq);
        if (fields.has(name)) fail(`field ${name} appears twice`);
        fields.set(name, decode(part.slice(eq + 1)));
      }
      for (const req of RECORD_FIELDS[key] ?? []) {
        if (!fields.has(req)) fail(`${key} record lacks the field ${req}`);
      }
      const list = records.get(key) ?? [];
      list.push({ line: n, fields });
      records.set(key, list);
      return;
    }
    const value = decode(rest);
    if (kind === 'list') {
      const list = lists.get(key) ?? [];
      list.push({ line: n, value });
      lists.set(key, list);
      return;
    }
    if (scalars.has(key)) fail(`${key} appears twice (first on line ${scalars.get(key)!.line})`);
    scalars.set(key, { line: n, value });
    if (key === 'end') {
      if (value !== 'ok') fail('the end line must say ok');
      ended = true;
    }
  });
  if (!ended) {
    throw new ProbeParseError(
      `probe output is truncated after ${lines.length} lines (no \`end\` line): the probe stopped early; its stderr says why`,
      null,
    );
  }
  return { scalars, lists, records };
}

/** Unquotes one os-release value (shell-like: "..." with backslash escapes, '...', or bare). */
function osReleaseValue(v: string): string {
  if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) {
    return v.slice(1, -1).replace(/\\([\\"$`])/g, '$1');
  }
  if (v.startsWith("'") && v.endsWith("'") && v.length >= 2) return v.slice(1, -1);
  return v.replace(/\\(.)/g, '$1');
}

/** Parses the probe's output into Facts, or throws ProbeParseError naming the line at fault. */
export function parseFacts(probeOutput: string): Facts {
  const { scalars, lists, records } = readLines(probeOutput);

  const at = (key: string, why: string): never => {
    const e = scalars.get(key);
    throw new ProbeParseError(
      e ? `probe output line ${e.line}: ${key}: ${why}` : `probe output: ${key}: ${why}`,
      e?.line ?? null,
    );
  };
  const str = (key: string): string | null => scalars.get(key)?.value ?? null;
  const need = (key: string): string => str(key) ?? at(key, 'missing');
  const nonEmpty = (key: string): string | null => {
    const v = str(key);
    return v === null || v === '' ? null : v;
  };
  const int = (key: string): number | null => {
    const v = str(key);
    if (v === null || v === '') return null;
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v)))
      at(key, `not a whole number: ${JSON.stringify(v)}`);
    return Number(v);
  };
  const bool = (key: string): boolean => {
    const v = str(key);
    if (v === null || v === '0') return false;
    if (v === '1') return true;
    return at(key, `expected 0 or 1, got ${JSON.stringify(v)}`);
  };

  const recordFail = (r: RecordEntry, why: string): never => {
    throw new ProbeParseError(`probe output line ${r.line}: ${why}`, r.line);
  };
  const field = (r: RecordEntry, name: string): string | null => {
    const v = r.fields.get(name);
    return v === undefined || v === '' ? null : v;
  };
  const fieldInt = (r: RecordEntry, name: string): number | null => {
    const v = field(r, name);
    if (v === null) return null;
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
      recordFail(r, `field ${name} is not a whole number: ${JSON.stringify(v)}`);
    }
    return Number(v);
  };
  const fieldBool = (r: RecordEntry, name: string): boolean => {
    const v = field(r, name);
    if (v === null || v === '0') return false;
    if (v === '1') return true;
    return recordFail(r, `field ${name} must be 0 or 1, got ${JSON.stringify(v)}`);
  };

  const version = need('probe_version');
  if (version !== '1') at('probe_version', `this orchestrator understands probe version 1, not ${version}`);

  const osRelease = new Map<string, string>();
  for (const e of lists.get('os_release') ?? []) {
    const eq = e.value.indexOf('=');
    if (eq > 0) osRelease.set(e.value.slice(0, eq), osReleaseValue(e.value.slice(eq + 1)));
  }
  const osId = osRelease.get('ID') ?? 'linux';

  const blockDevices: BlockDevice[] = (records.get('blockdev') ?? []).map((r) => {
    const type = field(r, 'type');
    if (type !== 'disk' && type !== 'part' && type !== 'other') {
      recordFail(r, `blockdev type must be disk, part or other, not ${JSON.stringify(type)}`);
    }
    const pt = field(r, 'pttype');
    return {
      name: field(r, 'name') ?? recordFail(r, 'blockdev name is empty'),
      type: type as BlockDevice['type'],
      parent: field(r, 'parent'),
      sizeBytes: fieldInt(r, 'size') ?? 0,
      partNumber: fieldInt(r, 'partn') || null,
      ptType: pt === 'dos' || pt === 'gpt' ? pt : null,
      uuid: field(r, 'uuid'),
      partuuid: field(r, 'partuuid'),
      label: field(r, 'label'),
      fstype: field(r, 'fstype'),
      removable: fieldBool(r, 'removable'),
      readOnly: fieldBool(r, 'ro'),
      majMin: field(r, 'majmin') ?? undefined,
      dmUuid: field(r, 'dm_uuid'),
      dmName: field(r, 'dm_name'),
    };
  });

  const mounts: Mount[] = (records.get('mount') ?? []).map((r) => ({
    source: r.fields.get('source')!,
    target: r.fields.get('target')!,
    fstype: r.fields.get('fstype')!,
    options: r.fields.get('options')!,
  }));

  const dirs = new Map<string, DirLocation>();
  for (const r of records.get('dir') ?? []) {
    const role = r.fields.get('role')!;
    if (dirs.has(role)) recordFail(r, `a second dir record for role ${role}`);
    dirs.set(role, {
      path: r.fields.get('path')!,
      exists: fieldBool(r, 'exists'),
      mountpoint: field(r, 'mountpoint') ?? recordFail(r, 'dir mountpoint is empty'),
      device: field(r, 'device'),
      fstype: r.fields.get('fstype')!,
      freeBytes: (fieldInt(r, 'free_kb') ?? 0) * 1024,
      writable: fieldBool(r, 'writable'),
      fsRoot: field(r, 'fsroot') ?? '/',
      probedPath: field(r, 'probed') ?? r.fields.get('path')!,
      source: r.fields.get('source') ?? '',
    });
  }
  const dir = (role: string): DirLocation => {
    const d = dirs.get(role);
    if (!d) throw new ProbeParseError(`probe output: no dir record for role ${role}`, null);
    return d;
  };
  const rootDir = dir('root');
  const rootBlock = blockDevices.find((b) => b.name === rootDir.device);
  const rootDevice =
    rootBlock && (rootBlock.type === 'part' || rootBlock.type === 'disk') ? rootBlock.name : null;

  const warnings = (lists.get('warning') ?? []).map((e) => e.value);
  const memAvailable = int('mem_available_kb');
  if (memAvailable === null) warnings.push('the kernel reports no MemAvailable; MemFree is used instead');

  const secure = str('secure_boot');
  if (secure !== null && secure !== '0' && secure !== '1') at('secure_boot', 'expected 0 or 1');

  const firmware = need('firmware');
  if (firmware !== 'bios' && firmware !== 'uefi' && firmware !== 'devicetree') {
    at('firmware', `expected bios, uefi or devicetree, got ${JSON.stringify(firmware)}`);
  }

  const grubDir = nonEmpty('grub_dir');
  const envHex = nonEmpty('grub_env_hex');
  if (envHex !== null && !/^(?:[0-9a-f]{2})+$/.test(envHex))
    at('grub_env_hex', 'not an even run of hex digits');
  const envWritable = bool('grub_env_boot_writable');
  let envReason = nonEmpty('grub_env_boot_reason');
  if (!envWritable && envReason === null) {
    envReason = grubDir === null ? 'no GRUB directory (/boot/grub or /boot/grub2) was found' : 'unknown';
  }
  const mkconfig = nonEmpty('grub_mkconfig');
  const updateGrub = nonEmpty('grub_update');

  const candidate = {
    probeVersion: 1,
    hostname: need('hostname'),
    arch: need('arch'),
    os: {
      id: osId,
      versionId: osRelease.get('VERSION_ID') ?? null,
      prettyName: osRelease.get('PRETTY_NAME') ?? osRelease.get('NAME') ?? 'Linux',
      isBalenaOS: osId === 'balena-os' || osId === 'resin-os',
    },
    kernel: {
      release: need('kernel_release'),
      modulesDir: nonEmpty('kernel_modules_dir'),
      image: nonEmpty('kernel_image'),
      imageSizeBytes: int('kernel_image_size'),
      cmdline: str('kernel_cmdline') ?? '',
      imageEfiStub: str('kernel_image_efi_stub') === null ? null : bool('kernel_image_efi_stub'),
    },
    firmware: {
      type: firmware,
      secureBoot: secure === null ? null : secure === '1',
    },
    hardware: {
      dmiSysVendor: nonEmpty('dmi_sys_vendor'),
      dmiProductName: nonEmpty('dmi_product_name'),
      dmiBoardName: nonEmpty('dmi_board_name'),
      dtModel: nonEmpty('dt_model'),
      dtCompatible: (lists.get('dt_compatible') ?? []).map((e) => e.value),
      cpuModel: nonEmpty('cpu_model'),
      cpuRevision: nonEmpty('cpu_revision') ?? nonEmpty('dt_revision'),
      cpuHardware: nonEmpty('cpu_hardware'),
      bootloaderTimestamp: int('bootloader_timestamp'),
    },
    memory: {
      totalBytes: (int('mem_total_kb') ?? at('mem_total_kb', 'missing')) * 1024,
      availableBytes: (memAvailable ?? int('mem_free_kb') ?? 0) * 1024,
    },
    blockDevices,
    mounts,
    rootDevice,
    rootDir,
    bootDir: dir('boot'),
    workDir: dir('work'),
    storageModules: [...new Set((lists.get('storage_module') ?? []).map((e) => e.value))],
    grub: {
      installed: mkconfig !== null || updateGrub !== null,
      mkconfig,
      reboot: nonEmpty('grub_reboot'),
      editenv: nonEmpty('grub_editenv'),
      dir: grubDir,
      envFile: nonEmpty('grub_env_file'),
      envWritableAtBoot: envWritable,
      grubDDir: bool('grub_d_dir'),
      honoursNextEntry: bool('grub_cfg_next_entry'),
      updateGrub,
      envNotWritableReason: envWritable ? null : envReason,
      envBase64: envHex === null ? null : Buffer.from(envHex, 'hex').toString('base64'),
      envSymlinkTarget: nonEmpty('grub_env_link'),
    },
    tools: {
      setsid: bool('tool_setsid'),
      flock: bool('tool_flock'),
      sha256sum: bool('tool_sha256sum'),
      efibootmgr: bool('tool_efibootmgr'),
      curl: bool('tool_curl'),
      wget: bool('tool_wget'),
    },
    idTool: str('id_tool') ?? 'none',
    warnings,
  };

  const netKind = (r: RecordEntry): 'ethernet' | 'wifi' | 'other' => {
    const k = field(r, 'kind');
    return k === 'ethernet' || k === 'wifi' ? k : 'other';
  };
  const network = {
    interfaces: (records.get('netif') ?? []).map((r) => ({
      name: field(r, 'name') ?? recordFail(r, 'netif name is empty'),
      kind: netKind(r),
      mac: field(r, 'mac'),
      up: fieldBool(r, 'up'),
      physical: fieldBool(r, 'physical'),
      driver: field(r, 'driver'),
      ipv4: (field(r, 'ipv4') ?? '')
        .split(' ')
        .filter(Boolean)
        .map((a) => ({ cidr: a.replace(/\+dynamic$/, ''), dynamic: a.endsWith('+dynamic') })),
      ipv6: (field(r, 'ipv6') ?? '').split(' ').filter(Boolean),
    })),
    defaultRoutes: (records.get('netroute') ?? []).map((r) => ({
      dev: field(r, 'dev') ?? recordFail(r, 'netroute dev is empty'),
      proto: field(r, 'proto'),
    })),
    services: [...new Set((lists.get('net_service') ?? []).map((e) => e.value))],
  };
  const watchdog = {
    devices: (records.get('watchdog') ?? []).map((r) => {
      const state = field(r, 'state');
      return {
        device: field(r, 'device') ?? recordFail(r, 'watchdog device is empty'),
        state: state === 'active' || state === 'inactive' ? state : null,
        identity: field(r, 'identity'),
        timeoutSeconds: fieldInt(r, 'timeout'),
        module: field(r, 'module'),
      };
    }),
    systemdRuntime: nonEmpty('watchdog_systemd'),
    daemon: nonEmpty('watchdog_daemon'),
  };
  const dtRevision = nonEmpty('dt_revision');
  if (dtRevision !== null && !/^[0-9a-f]+$/.test(dtRevision)) at('dt_revision', 'not hex digits');
  const boot = {
    files: (records.get('bootfile') ?? []).map((r) => {
      const hex = field(r, 'hex');
      if (hex !== null && !/^(?:[0-9a-f]{2})+$/.test(hex))
        recordFail(r, 'bootfile hex is not an even run of hex digits');
      return {
        path: field(r, 'path') ?? recordFail(r, 'bootfile path is empty'),
        sizeBytes: fieldInt(r, 'size') ?? 0,
        contentBase64:
          hex === null ? (fieldInt(r, 'size') === 0 ? '' : null) : Buffer.from(hex, 'hex').toString('base64'),
      };
    }),
    rawBootloaders: (records.get('uboot_raw') ?? []).map((r) => {
      const format = field(r, 'format');
      if (format !== 'uimage' && format !== 'fit')
        recordFail(r, `uboot_raw format ${JSON.stringify(format)} is unknown`);
      return {
        device: field(r, 'device') ?? recordFail(r, 'uboot_raw device is empty'),
        offsetBytes: fieldInt(r, 'offset') ?? 0,
        format: format as 'uimage' | 'fit',
      };
    }),
    firmwareDir: dirs.get('firmware') ?? null,
    ubootDir: dirs.get('uboot') ?? null,
    dtbDir: nonEmpty('dtb_dir'),
    dtbNames: (lists.get('dtb_name') ?? []).map((e) => e.value),
  };
  // UEFI: boot entry numbers as efibootmgr writes them (four upper-case hex digits)
  const bootNum = (key: string): string | null => {
    const v = nonEmpty(key);
    if (v !== null && !/^[0-9A-F]{4}$/.test(v)) at(key, `expected four hex digits, got ${JSON.stringify(v)}`);
    return v;
  };
  const bootOrder = nonEmpty('efi_boot_order');
  if (bootOrder !== null && !/^[0-9A-F]{4}(,[0-9A-F]{4})*$/.test(bootOrder))
    at('efi_boot_order', 'expected hex numbers separated by commas');
  const efi =
    firmware === 'uefi'
      ? {
          varsWritable: bool('efi_vars_writable'),
          bootCurrent: bootNum('efi_boot_current'),
          bootNext: bootNum('efi_boot_next'),
          bootOrder: bootOrder === null ? [] : bootOrder.split(','),
          entries: (records.get('efi_boot_entry') ?? []).map((r) => ({
            num: field(r, 'num') ?? recordFail(r, 'efi_boot_entry num is empty'),
            active: fieldBool(r, 'active'),
            label: r.fields.get('label') ?? '',
          })),
          esp: dirs.get('esp') ?? null,
        }
      : undefined;
  Object.assign(candidate, { network, watchdog, boot, efi });

  const parsed = Facts.safeParse(candidate);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ProbeParseError(`probe output does not make valid facts: ${issues.join('; ')}`, null);
  }
  return parsed.data;
}
