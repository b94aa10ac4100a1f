// The hardware balena-migrate knows, as data: how each board is recognised (Raspberry Pi
// revision codes, device-tree compatible strings, device-tree model, DMI) and which balena
// device type and boot manager it gets. Adding a board is adding a row.
//
// Sources: the Raspberry Pi revision-code table (raspberrypi/documentation, "revision codes":
// the board type is bits 4-11 of a new-style code, bit 23 set; old-style codes 0002-0015 are
// all first-generation boards), the kernel's device-tree bindings (arm/bcm/bcm2835.yaml and
// the BeagleBone .dts files), and balena's device type slugs (the balena-raspberrypi,
// balena-beaglebone and balena-intel device repositories).
import type { Facts } from '../facts/facts.ts';
import type { Plan } from '../plan/plan.ts';

type BootManagerName = Plan['bootManager'];

export interface HardwareModel {
  /** stable id for reports and tests */
  id: string;
  /** what an operator calls it */
  name: string;
  family: 'raspberrypi' | 'beaglebone' | 'pc';
  /** Raspberry Pi new-style revision code board types (bits 4-11) */
  rpiTypes?: readonly number[];
  /** this row is for every old-style (pre-Pi 2) revision code */
  rpiOldStyle?: boolean;
  /** device-tree compatible strings that name exactly this board */
  compatible?: readonly string[];
  /** the device-tree model string, loosely: tolerant of revisions and "Plus"/"+" */
  dtModel?: RegExp;
  /** DMI vendor and product (or board) name */
  dmi?: { vendor: RegExp; product: RegExp };
  /** `uname -m` values a kernel on this board reports */
  arch: readonly string[];
  /** the balena device type: one slug, or one per kernel arch (`default` for the others) */
  deviceType: string | Readonly<Record<string, string>>;
  /** other balena device types whose images boot this board too */
  alternatives: readonly string[];
  bootManager: BootManagerName;
  /** Raspberry Pi: the firmware's one-shot `reboot '0 tryboot'` (Pi 4 family: with a bootloader from 2021-03-18 on) */
  tryboot?: 'always' | 'bootloader';
  /** u-boot boards: the device tree u-boot passes to the stage2 kernel */
  dtb?: string;
}

/** Pi 4 bootloaders built on or after 2021-03-18 08:54:11 UTC know tryboot (rpi-eeprom release notes). */
export const TRYBOOT_BOOTLOADER_SINCE = 1616057651;

const PI_ARCH = ['armv6l', 'armv7l', 'aarch64'] as const;

/** Rows are tried in order for each kind of evidence; the more specific rows come first. */
export const HARDWARE_MODELS: readonly HardwareModel[] = [
  {
    id: 'rpi1',
    name: 'Raspberry Pi 1 / Zero / Zero W / Compute Module 1',
    family: 'raspberrypi',
    rpiOldStyle: true,
    // A, B, A+, B+, Alpha, CM1, Zero, Zero W
    rpiTypes: [0x00, 0x01, 0x02, 0x03, 0x05, 0x06, 0x09, 0x0c],
    compatible: [
      'raspberrypi,model-a',
      'raspberrypi,model-a-plus',
      'raspberrypi,model-b',
      'raspberrypi,model-b-i2c0',
      'raspberrypi,model-b-rev2',
      'raspberrypi,model-b-plus',
      'raspberrypi,compute-module',
      'raspberrypi,model-zero',
      'raspberrypi,model-zero-w',
    ],
    dtModel: /^Raspberry Pi (Model [AB]\b|Zero( W)?( Rev|$)|Compute Module( Rev|$))/,
    arch: ['armv6l'],
    deviceType: 'raspberry-pi',
    alternatives: [],
    bootManager: 'rpi',
  },
  {
    id: 'rpi2',
    name: 'Raspberry Pi 2 Model B',
    family: 'raspberrypi',
    rpiTypes: [0x04],
    compatible: ['raspberrypi,2-model-b'],
    dtModel: /^Raspberry Pi 2 Model B\b/,
    arch: PI_ARCH,
    deviceType: 'raspberry-pi2',
    alternatives: [],
    bootManager: 'rpi',
  },
  {
    id: 'rpi0-2w',
    name: 'Raspberry Pi Zero 2 W',
    family: 'raspberrypi',
    rpiTypes: [0x12],
    compatible: ['raspberrypi,model-zero-2-w'],
    dtModel: /^Raspberry Pi Zero 2\b/,
    arch: PI_ARCH,
    deviceType: 'raspberrypi0-2w-64',
    alternatives: [],
    bootManager: 'rpi',
  },
  {
    id: 'rpi3',
    name: 'Raspberry Pi 3 (B, B+, A+, Compute Module 3/3+)',
    family: 'raspberrypi',
    // 3B, CM3, 3B+, 3A+, CM3+
    rpiTypes: [0x08, 0x0a, 0x0d, 0x0e, 0x10],
    compatible: [
      'raspberrypi,3-model-b',
      'raspberrypi,3-model-b-plus',
      'raspberrypi,3-model-a-plus',
      'raspberrypi,3-compute-module',
      'raspberrypi,3-compute-module-lite',
    ],
    dtModel: /^Raspberry Pi (3 Model [AB]\b|Compute Module 3\b)/,
    arch: PI_ARCH,
    deviceType: { aarch64: 'raspberrypi3-64', default: 'raspberrypi3' },
    alternatives: ['raspberrypi3', 'raspberrypi3-64'],
    bootManager: 'rpi',
  },
  {
    id: 'rpi400',
    name: 'Raspberry Pi 400',
    family: 'raspberrypi',
    rpiTypes: [0x13],
    compatible: ['raspberrypi,400'],
    dtModel: /^Raspberry Pi 400\b/,
    arch: PI_ARCH,
    deviceType: 'raspberrypi400-64',
    alternatives: ['raspberrypi4-64'],
    bootManager: 'rpi',
    tryboot: 'bootloader',
  },
  {
    id: 'rpi-cm4',
    name: 'Raspberry Pi Compute Module 4',
    family: 'raspberrypi',
    rpiTypes: [0x14],
    compatible: ['raspberrypi,4-compute-module'],
    dtModel: /^Raspberry Pi Compute Module 4\b/,
    arch: PI_ARCH,
    deviceType: 'raspberrypicm4-ioboard',
    alternatives: ['raspberrypi4-64'],
    bootManager: 'rpi',
    tryboot: 'bootloader',
  },
  {
    id: 'rpi4',
    name: 'Raspberry Pi 4 Model B',
    family: 'raspberrypi',
    rpiTypes: [0x11],
    compatible: ['raspberrypi,4-model-b'],
    dtModel: /^Raspberry Pi 4 Model B\b/,
    arch: PI_ARCH,
    deviceType: 'raspberrypi4-64',
    alternatives: [],
    bootManager: 'rpi',
    tryboot: 'bootloader',
  },
  {
    id: 'rpi5',
    name: 'Raspberry Pi 5',
    family: 'raspberrypi',
    rpiTypes: [0x17],
    compatible: ['raspberrypi,5-model-b'],
    dtModel: /^Raspberry Pi 5 Model B\b/,
    arch: ['aarch64'],
    deviceType: 'raspberrypi5',
    alternatives: [],
    bootManager: 'rpi',
    tryboot: 'always',
  },
  {
    // its compatible list also names bone-black, so it comes before the Black
    id: 'beaglebone-green',
    name: 'BeagleBone Green',
    family: 'beaglebone',
    compatible: ['ti,am335x-bone-green', 'seeed,am335x-bone-green'],
    dtModel: /BeagleBone Green$/,
    arch: ['armv7l'],
    deviceType: 'beaglebone-green',
    alternatives: ['beaglebone-black'],
    bootManager: 'uboot',
    dtb: 'am335x-bonegreen.dtb',
  },
  {
    id: 'beaglebone-black',
    name: 'BeagleBone Black',
    family: 'beaglebone',
    compatible: ['ti,am335x-bone-black'],
    dtModel: /BeagleBone Black$/,
    arch: ['armv7l'],
    deviceType: 'beaglebone-black',
    alternatives: ['beaglebone-green'],
    bootManager: 'uboot',
    dtb: 'am335x-boneblack.dtb',
  },
  {
    id: 'intel-nuc',
    name: 'Intel NUC',
    family: 'pc',
    dmi: { vendor: /^Intel/i, product: /^NUC/i },
    arch: ['x86_64'],
    deviceType: 'genericx86-64-ext',
    alternatives: ['intel-nuc', 'generic-amd64'],
    bootManager: 'grub',
  },
  {
    id: 'x86_64-pc',
    name: 'x86-64 PC',
    family: 'pc',
    arch: ['x86_64'],
    deviceType: 'genericx86-64-ext',
    alternatives: ['generic-amd64'],
    bootManager: 'grub',
  },
];

/** A Raspberry Pi revision code, decoded as far as identifying the board needs. */
export interface RpiRevision {
  code: string;
  /** false for the first boards' sequential codes (0002-0015) */
  newStyle: boolean;
  /** board type (new-style codes only) */
  type: number | null;
}

/** Decodes /proc/cpuinfo's `Revision` (or the device tree's linux,revision), or null when it is not one. */
export function decodeRpiRevision(text: string | null | undefined): RpiRevision | null {
  const t = (text ?? '').trim().toLowerCase();
  if (!/^[0-9a-f]{1,8}$/.test(t)) return null;
  const n = Number.parseInt(t, 16);
  if ((n >>> 23) & 1) return { code: t.replace(/^0+(?=.)/, ''), newStyle: true, type: (n >>> 4) & 0xff };
  // old style: the low 24 bits are 0x0002-0x0015; a 1 in front says the warranty bit is set
  const old = n & 0xffffff;
  if (old >= 0x2 && old <= 0x15) return { code: t, newStyle: false, type: null };
  return null;
}

export type Identification =
  | { ok: true; model: HardwareModel; evidence: string[] }
  | { ok: false; reasons: string[] };

function modelForRevision(rev: RpiRevision, models: readonly HardwareModel[]): HardwareModel | undefined {
  return rev.newStyle
    ? models.find((m) => m.rpiTypes?.includes(rev.type ?? -1))
    : models.find((m) => m.rpiOldStyle);
}

/**
 * Which board this host is, from every kind of evidence the probe gathered; refuses when the
 * evidence disagrees (a revision code of one board with the device tree of another) or names
 * nothing known. The revision code is the strongest evidence: it survives a 32- or 64-bit OS,
 * a vendor or upstream kernel, and any spelling of the model string.
 */
export function identifyHardware(
  facts: Facts,
  models: readonly HardwareModel[] = HARDWARE_MODELS,
): Identification {
  const hw = facts.hardware;
  const evidence: string[] = [];
  const candidates: { model: HardwareModel; why: string }[] = [];

  const isPi =
    hw.dtCompatible.some((c) => c.startsWith('raspberrypi,') || /^brcm,bcm27(0|1)/.test(c)) ||
    /^Raspberry Pi\b/.test(hw.dtModel ?? '') ||
    /^BCM(2835|2708|2709|2710|2711|2712)$/.test(hw.cpuHardware ?? '');
  const rev = isPi ? decodeRpiRevision(hw.cpuRevision) : null;
  if (rev) {
    const m = modelForRevision(rev, models);
    if (m) candidates.push({ model: m, why: `Raspberry Pi revision code ${rev.code}` });
    else {
      return {
        ok: false,
        reasons: [
          `this Raspberry Pi's revision code ${rev.code} (board type 0x${(rev.type ?? 0).toString(16)}) is not a board ` +
            `balena-migrate knows (${hw.dtModel ?? 'no model string'}); supported: ${supportedList(models)}`,
        ],
      };
    }
  }
  for (const c of hw.dtCompatible) {
    const m = models.find((x) => x.compatible?.includes(c));
    if (m) {
      candidates.push({ model: m, why: `device-tree compatible "${c}"` });
      break;
    }
  }
  if (hw.dtModel) {
    const m = models.find((x) => x.dtModel?.test(hw.dtModel ?? ''));
    if (m) candidates.push({ model: m, why: `device-tree model "${hw.dtModel}"` });
  }
  const dmiName = hw.dmiProductName ?? hw.dmiBoardName;
  if (hw.dmiSysVendor && dmiName) {
    const m = models.find(
      (x) =>
        x.dmi?.vendor.test(hw.dmiSysVendor ?? '') &&
        (x.dmi.product.test(hw.dmiProductName ?? '') || x.dmi.product.test(hw.dmiBoardName ?? '')),
    );
    if (m) candidates.push({ model: m, why: `DMI "${hw.dmiSysVendor} ${dmiName}"` });
  }

  if (candidates.length > 0) {
    const first = candidates[0]!;
    const other = candidates.find((c) => c.model.id !== first.model.id);
    if (other) {
      return {
        ok: false,
        reasons: [
          `the evidence disagrees about what this board is: ${first.why} says ${first.model.name}, ` +
            `${other.why} says ${other.model.name}; check the host (an overlay or a foreign device tree?) and re-run`,
        ],
      };
    }
    evidence.push(...candidates.map((c) => c.why));
    if (!first.model.arch.includes(facts.arch)) {
      return {
        ok: false,
        reasons: [
          `this host looks like a ${first.model.name} (${evidence.join(', ')}) but its kernel is ${facts.arch}, ` +
            `which that board does not run (${first.model.arch.join(', ')})`,
        ],
      };
    }
    return { ok: true, model: first.model, evidence };
  }
  if (isPi) {
    return {
      ok: false,
      reasons: [
        `this is a Raspberry Pi (${hw.dtModel ?? hw.dtCompatible.join(', ')}) that balena-migrate cannot tell apart: ` +
          `no revision code and no known device-tree compatible; supported: ${supportedList(models)}`,
      ],
    };
  }
  // Only the architecture is left: rows with no other evidence to ask for.
  const byArch = models.find(
    (m) =>
      !m.rpiTypes && !m.rpiOldStyle && !m.compatible && !m.dtModel && !m.dmi && m.arch.includes(facts.arch),
  );
  if (byArch && facts.firmware.type !== 'devicetree') {
    return {
      ok: true,
      model: byArch,
      evidence: [`architecture ${facts.arch} with ${facts.firmware.type} firmware`],
    };
  }
  const what = hw.dtModel ?? hw.dmiProductName ?? hw.cpuModel;
  return {
    ok: false,
    reasons: [
      `no supported device type for this host, ${facts.arch} with ${facts.firmware.type} firmware` +
        `${what ? ` (${what})` : ''}${hw.dtCompatible.length ? `, compatible ${hw.dtCompatible.join(', ')}` : ''}: ` +
        `supported are ${supportedList(models)}; leave this host out of the run until its platform is supported`,
    ],
  };
}

/** The device type a model gets on a kernel of this arch. */
export function deviceTypeFor(model: HardwareModel, arch: string): string {
  if (typeof model.deviceType === 'string') return model.deviceType;
  return model.deviceType[arch] ?? model.deviceType.default!;
}

/** Every device type an image may be for to boot this model, the default first. */
export function deviceTypesFor(model: HardwareModel, arch: string): string[] {
  return [...new Set([deviceTypeFor(model, arch), ...model.alternatives])];
}

function supportedList(models: readonly HardwareModel[]): string {
  const types = (m: HardwareModel): string[] =>
    typeof m.deviceType === 'string' ? [m.deviceType] : [...new Set(Object.values(m.deviceType))];
  return models.map((m) => `${m.name} (${types(m).join(' or ')})`).join('; ');
}

/** Older names balena still answers to, by the slug they stand for. */
export const DEVICE_TYPE_ALIASES: Readonly<Record<string, string>> = {
  raspberrypi: 'raspberry-pi',
  raspberrypi2: 'raspberry-pi2',
  beaglebone: 'beaglebone-black',
  nuc: 'intel-nuc',
};

export function canonicalDeviceType(slug: string): string {
  return DEVICE_TYPE_ALIASES[slug] ?? slug;
}

/**
 * Does the image (its device-type.json) and config.json fit this board? Returns the device
 * type the plan installs, refusals (unless `allow`), and notes.
 */
export function checkDeviceTypes(opts: {
  name: string;
  evidence: string[];
  accepted: string[];
  imageType: string | null | undefined;
  configType: string | null | undefined;
  allow: boolean;
}): { deviceType: string; reasons: string[]; notes: string[] } {
  const image = opts.imageType ? canonicalDeviceType(opts.imageType) : null;
  const config = opts.configType ? canonicalDeviceType(opts.configType) : null;
  const host = opts.accepted[0]!;
  const problems: string[] = [];
  const fix = 'or set allowDeviceTypeMismatch: true (--allow-device-type-mismatch) if you know better';
  const what = `this host is a ${opts.name} (${opts.evidence.join(', ')})`;
  if (image && !opts.accepted.includes(image)) {
    problems.push(
      `the image is for ${image} (its device-type.json), but ${what}: balenaOS for ${image} would not boot it; ` +
        `use an image for ${opts.accepted.join(' or ')}, ${fix}`,
    );
  }
  if (config && !opts.accepted.includes(config)) {
    problems.push(
      `config.json is for a ${config} (its deviceType), but ${what}: the device would register as the wrong ` +
        `type; download config.json for ${opts.accepted.join(' or ')}, ${fix}`,
    );
  }
  if (image && config && image !== config && problems.length === 0) {
    problems.push(`the image is for ${image} but config.json for ${config}: use a matching pair, ${fix}`);
  }
  const notes: string[] = [];
  if (!opts.imageType) {
    notes.push(
      opts.imageType === null
        ? 'device type: the image has no device-type.json on its boot partition; checked against config.json only'
        : 'device type: the image was not read for its device type',
    );
  }
  const deviceType = image ?? config ?? host;
  if (deviceType !== host && opts.accepted.includes(deviceType)) {
    notes.push(`device type: ${deviceType}, which the ${opts.name} also runs (its default would be ${host})`);
  }
  if (problems.length > 0 && opts.allow) {
    notes.push(...problems.map((p) => `WARNING (allowDeviceTypeMismatch): ${p.split(': balenaOS')[0]}`));
    return { deviceType, reasons: [], notes };
  }
  return { deviceType, reasons: problems, notes };
}
