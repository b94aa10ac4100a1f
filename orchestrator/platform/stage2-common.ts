// What every boot manager's planner asks the same way about stage2: which hardware watchdog
// it must keep kicking, whether the log device is usable, and how much RAM stage2 needs.
// Pure: facts and sizes in, answers and refusal reasons out.
import type { BlockDevice, Facts } from '../facts/facts.ts';
import type { NetworkPlan } from '../network/plan-network.ts';
import type { ImageInfo } from '../plan/plan.ts';

/** What stage2 keeps in RAM for its log (the init's LOG_RESERVE). */
export const STAGE2_LOG_RESERVE_BYTES = 1024 * 1024;

/**
 * The watchdog stage2 must kick, if the old OS runs one: a device the kernel says is active,
 * or (when the kernel does not say) one that systemd or a watchdog daemon keeps. A watchdog
 * left running through the reboot would reset the machine in the middle of the write.
 */
export function watchdogToKick(facts: Facts): { device: string; module: string | null; why: string } | null {
  const w = facts.watchdog;
  if (!w || w.devices.length === 0) return null;
  const systemd = w.systemdRuntime !== null && w.systemdRuntime !== '0' && w.systemdRuntime !== '';
  const user = w.daemon
    ? `the ${w.daemon} daemon`
    : systemd
      ? `systemd (RuntimeWatchdogUSec=${w.systemdRuntime})`
      : null;
  const active = w.devices.find((d) => d.state === 'active');
  if (active) {
    return {
      device: active.device,
      module: active.module,
      why: `${active.device} is running${user ? ` (kept by ${user})` : ''}`,
    };
  }
  const unknown = w.devices.find((d) => d.state === null);
  if (unknown && user)
    return { device: unknown.device, module: unknown.module, why: `${user} uses ${unknown.device}` };
  return null;
}

/** The block device a `LABEL=`/`UUID=`/`PARTUUID=` spec names, from the facts. */
export function deviceBySpec(facts: Facts, spec: string): BlockDevice | undefined {
  const [kind, ...rest] = spec.split('=');
  const value = rest.join('=');
  return facts.blockDevices.find((b) =>
    kind === 'LABEL'
      ? b.label === value
      : kind === 'UUID'
        ? b.uuid?.toLowerCase() === value.toLowerCase()
        : kind === 'PARTUUID'
          ? b.partuuid?.toLowerCase() === value.toLowerCase()
          : false,
  );
}

/** Refusal reasons for stage2.logDevice: it must be on the host, not on the install disk, and mountable. */
export function logDeviceProblems(facts: Facts, spec: string, installDisk: string | undefined): string[] {
  const dev = deviceBySpec(facts, spec);
  if (!dev) return [`stage2.logDevice ${spec} is not on this host: plug it in, or leave logDevice out`];
  if (installDisk && (dev.name === installDisk || dev.parent === installDisk)) {
    return [
      `stage2.logDevice ${spec} is ${dev.name}, on the install disk ${installDisk}, which stage2 overwrites`,
    ];
  }
  if (!dev.fstype || !['ext2', 'ext3', 'ext4', 'vfat'].includes(dev.fstype)) {
    return [
      `stage2.logDevice ${spec} (${dev.name}) holds ${dev.fstype ?? 'no filesystem'}; stage2 writes to ext2/3/4 or vfat`,
    ];
  }
  return [];
}

/** RAM stage2 needs: the compressed image, config.json, network files, its log, the margin and the decompressor. */
export function stage2RamNeed(input: {
  image: ImageInfo;
  configBytes: number;
  network: NetworkPlan | undefined;
  marginBytes: number;
}): { needBytes: number; marginForStage2: number; networkBytes: number } {
  const networkBytes = (input.network?.files ?? []).reduce((n, f) => n + f.data.length, 0);
  const marginForStage2 = input.marginBytes + (input.image.decoderMemoryBytes ?? 0);
  return {
    needBytes:
      input.image.fileSizeBytes +
      input.configBytes +
      networkBytes +
      STAGE2_LOG_RESERVE_BYTES +
      marginForStage2,
    marginForStage2,
    networkBytes,
  };
}
