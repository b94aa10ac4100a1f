// Which balenaOS device type a host becomes and which boot manager gets it into stage2.
// A small table: adding a platform is adding a row (and, for a new boot manager, a planner).
import type { Facts } from '../facts/facts.ts';
import type { Plan } from '../plan/plan.ts';

export type BootManagerName = Plan['bootManager'];

export interface DeviceRule {
  /** stable name for reports and tests */
  id: string;
  /** what hosts this row is for, in words an operator recognises */
  description: string;
  /** `uname -m` values this row accepts */
  arch: readonly string[];
  firmware: readonly Facts['firmware']['type'][];
  /** an extra test beyond arch and firmware (e.g. a device-tree compatible string) */
  matches?: (facts: Facts) => boolean;
  deviceType: string;
  bootManager: BootManagerName;
}

export interface Device {
  ruleId: string;
  deviceType: string;
  bootManager: BootManagerName;
}

export type DeviceChoice = { ok: true; device: Device } | { ok: false; reasons: string[] };

/** The balena device type for x86-64 PCs, BIOS or UEFI. */
export const GENERIC_X86_64 = 'genericx86-64-ext';

/** Rows are tried in order; the first match wins. */
export const DEVICE_RULES: readonly DeviceRule[] = [
  {
    id: 'x86_64-grub',
    description: 'x86_64 PCs with BIOS or UEFI firmware booting through GRUB',
    arch: ['x86_64'],
    firmware: ['bios', 'uefi'],
    deviceType: GENERIC_X86_64,
    bootManager: 'grub',
  },
];

/** What the host is, in one phrase for refusal messages. */
function describeHost(facts: Facts): string {
  const model = facts.hardware.dtModel ?? facts.hardware.dmiProductName;
  return `${facts.arch} with ${facts.firmware.type} firmware${model ? ` (${model})` : ''}`;
}

/** Picks the device type and boot manager for a host, or says why there is none. */
export function chooseDevice(facts: Facts, rules: readonly DeviceRule[] = DEVICE_RULES): DeviceChoice {
  if (facts.os.isBalenaOS) {
    return {
      ok: false,
      reasons: [`the host already runs balenaOS (${facts.os.prettyName}): there is nothing to migrate`],
    };
  }
  const rule = rules.find(
    (r) =>
      r.arch.includes(facts.arch) && r.firmware.includes(facts.firmware.type) && (r.matches?.(facts) ?? true),
  );
  if (rule)
    return {
      ok: true,
      device: { ruleId: rule.id, deviceType: rule.deviceType, bootManager: rule.bootManager },
    };
  const supported = rules.map((r) => `${r.description} (${r.deviceType})`).join('; ');
  return {
    ok: false,
    reasons: [
      `no supported device type for this host, ${describeHost(facts)}: supported so far are ${supported}; ` +
        'leave this host out of the run until its platform is supported',
    ],
  };
}
