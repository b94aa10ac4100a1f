// Which balenaOS device type a host becomes and which boot manager gets it into stage2.
// The hardware is a table (registry.ts): adding a platform is adding a row (and, for a new
// boot manager, a planner).
import type { Facts } from '../facts/facts.ts';
import type { Plan } from '../plan/plan.ts';
import {
  deviceTypeFor,
  deviceTypesFor,
  HARDWARE_MODELS,
  type HardwareModel,
  identifyHardware,
} from './registry.ts';

export type BootManagerName = Plan['bootManager'];

/** A row of the hardware registry (registry.ts): how a board is recognised and what it becomes. */
export type DeviceRule = HardwareModel;

export interface Device {
  /** the registry row that matched */
  ruleId: string;
  /** the board, as an operator calls it */
  name: string;
  /** the balena device type this host becomes when nothing else is asked for */
  deviceType: string;
  /** every balena device type whose image boots this board (deviceType first) */
  deviceTypes: string[];
  bootManager: BootManagerName;
  /** what identified the board: revision code, device-tree compatible, model, DMI, arch */
  evidence: string[];
  model: HardwareModel;
}

export type DeviceChoice = { ok: true; device: Device } | { ok: false; reasons: string[] };

/** The balena device type for x86-64 PCs, BIOS or UEFI. */
export const GENERIC_X86_64 = 'genericx86-64-ext';

/** The registry rows, tried in order (see registry.ts). */
export const DEVICE_RULES: readonly DeviceRule[] = HARDWARE_MODELS;

/** Picks the device type and boot manager for a host, or says why there is none. */
export function chooseDevice(facts: Facts, rules: readonly DeviceRule[] = DEVICE_RULES): DeviceChoice {
  if (facts.os.isBalenaOS) {
    return {
      ok: false,
      reasons: [`the host already runs balenaOS (${facts.os.prettyName}): there is nothing to migrate`],
    };
  }
  const found = identifyHardware(facts, rules);
  if (!found.ok) return found;
  const { model, evidence } = found;
  return {
    ok: true,
    device: {
      ruleId: model.id,
      name: model.name,
      deviceType: deviceTypeFor(model, facts.arch),
      deviceTypes: deviceTypesFor(model, facts.arch),
      bootManager: model.bootManager,
      evidence,
      model,
    },
  };
}
