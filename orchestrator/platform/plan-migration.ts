// The planning entry point: the device decides the boot manager, the boot manager plans.
// Pure: PlanInput in, a Plan or the reasons for refusing out.
import type { PlanInput, PlanResult } from '../plan/plan.ts';
import { type BootManagerName, chooseDevice, type Device } from './device.ts';
import { pickX86BootManager, planEfiBoot } from './efi.ts';
import { planGrubBoot } from './grub.ts';
import { checkDeviceTypes } from './registry.ts';
import { planRpiBoot } from './rpi.ts';
import { planUbootBoot } from './uboot.ts';

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
  efi: {
    name: 'efi',
    plan: (input, device) => {
      const result = planEfiBoot(input);
      return result.ok ? { ok: true, plan: { ...result.plan, deviceType: device.deviceType } } : result;
    },
  },
  rpi: { name: 'rpi', plan: planRpiBoot },
  uboot: { name: 'uboot', plan: planUbootBoot },
};

/** Refused on every platform: nothing balena-migrate boots is signed for Secure Boot. */
export const SECURE_BOOT_REFUSAL =
  'Secure Boot is enabled: the stage2 kernel and initramfs are not signed for it and would not boot; ' +
  'disable Secure Boot in the firmware setup, then run check again';

/** Chooses the device type and boot manager for the host and plans its migration. */
export function planMigration(input: PlanInput): PlanResult {
  const choice = chooseDevice(input.facts);
  if (!choice.ok) return choice;
  if (input.facts.firmware.secureBoot === true) return { ok: false, reasons: [SECURE_BOOT_REFUSAL] };
  // the image and config.json must be for this board (or one that boots the same way)
  const types = checkDeviceTypes({
    name: choice.device.name,
    evidence: choice.device.evidence,
    accepted: choice.device.deviceTypes,
    imageType: input.imageDeviceType,
    configType: input.configDeviceType,
    allow: input.allowDeviceTypeMismatch ?? false,
  });
  // x86: GRUB, or a one-shot UEFI boot entry where GRUB cannot boot stage2 once (or when asked)
  const picked = pickX86BootManager(input.facts, choice.device.bootManager, input.bootManager);
  if (!picked.ok) return picked;
  const manager = BOOT_MANAGERS[picked.name];
  if (!manager) {
    return {
      ok: false,
      reasons: [`the ${picked.name} boot manager (for ${choice.device.deviceType}) is not implemented yet`],
    };
  }
  const result = manager.plan(input, choice.device);
  if (!result.ok) return { ok: false, reasons: [...types.reasons, ...result.reasons] };
  if (types.reasons.length > 0) return { ok: false, reasons: types.reasons };
  return {
    ok: true,
    plan: {
      ...result.plan,
      deviceType: types.deviceType,
      notes: [...(picked.note ? [picked.note] : []), ...result.plan.notes, ...types.notes],
    },
  };
}
