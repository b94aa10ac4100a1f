// The planning entry point: the device decides the boot manager, the boot manager plans.
// Pure: PlanInput in, a Plan or the reasons for refusing out.
import type { PlanInput, PlanResult } from '../plan/plan.ts';
import { type BootManagerName, chooseDevice, type Device } from './device.ts';
import { planGrubBoot } from './grub.ts';

/** Every boot manager plans from the same input; the device it was chosen for comes along. */
export interface BootManager {
  name: BootManagerName;
  plan(input: PlanInput, device: Device): PlanResult;
}

/** One entry per boot manager file; platforms not listed here are refused by name. */
export const BOOT_MANAGERS: Partial<Record<BootManagerName, BootManager>> = {
  grub: {
    name: 'grub',
    plan: (input, device) => {
      const result = planGrubBoot(input);
      return result.ok ? { ok: true, plan: { ...result.plan, deviceType: device.deviceType } } : result;
    },
  },
};

/** Chooses the device type and boot manager for the host and plans its migration. */
export function planMigration(input: PlanInput): PlanResult {
  const choice = chooseDevice(input.facts);
  if (!choice.ok) return choice;
  const manager = BOOT_MANAGERS[choice.device.bootManager];
  if (!manager) {
    return {
      ok: false,
      reasons: [
        `the ${choice.device.bootManager} boot manager (for ${choice.device.deviceType}) is not implemented yet`,
      ],
    };
  }
  return manager.plan(input, choice.device);
}
