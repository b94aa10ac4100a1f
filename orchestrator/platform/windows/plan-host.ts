// A Windows host's whole plan: the boot setup (plan.ts) and the device-type check every
// platform makes (the image's device-type.json and config.json must be for an x86-64 PC).
// Pure, like planMigration is for Linux hosts.
import type { WindowsFacts } from '../../facts/windows.ts';
import { checkDeviceTypes } from '../registry.ts';
import { planWindowsBoot, type WindowsPlanInput, type WindowsPlanResult } from './plan.ts';

/** balenaOS device types that boot a UEFI x86-64 PC, the default first. */
export const WINDOWS_PC_DEVICE_TYPES = ['genericx86-64-ext', 'generic-amd64', 'intel-nuc'];

function evidence(facts: WindowsFacts): string[] {
  const machine = [facts.manufacturer, facts.model].filter(Boolean).join(' ');
  return [`${facts.os.caption} on ${facts.arch}`, ...(machine ? [machine] : [])];
}

export function planWindowsHost(input: WindowsPlanInput): WindowsPlanResult {
  const types = checkDeviceTypes({
    name: 'x86-64 PC running Windows',
    evidence: evidence(input.facts),
    accepted: WINDOWS_PC_DEVICE_TYPES,
    imageType: input.imageDeviceType,
    configType: input.configDeviceType,
    allow: input.allowDeviceTypeMismatch ?? false,
  });
  const result = planWindowsBoot(input);
  if (!result.ok) return { ok: false, reasons: [...types.reasons, ...result.reasons] };
  if (types.reasons.length > 0) return { ok: false, reasons: types.reasons };
  return {
    ok: true,
    plan: { ...result.plan, deviceType: types.deviceType, notes: [...result.plan.notes, ...types.notes] },
  };
}
