// The plan phase of a Linux host: gathers what the planner needs (the local image, config.json
// and busybox, the stage2 kernel, the host's own initramfs, its network carried to balenaOS)
// and plans, or refuses with every reason. Windows hosts: platform/windows/plan-host.ts.
import { deviceTypeMismatch } from '../agent/host-agent.ts';
import { RefusalError } from '../errors.ts';
import { planNetwork } from '../network/plan-network.ts';
import type { Plan } from '../plan/plan.ts';
import { busyboxArchProblem } from '../platform/busybox-arch.ts';
import { planMigration } from '../platform/plan-migration.ts';
import type { SshSession } from '../ssh/session.ts';
import { buildHostInitramfs } from './payload.ts';
import type { ProbeResult } from './probe.ts';
import type { HostJob } from './run-host.ts';

/** A plan's timestamp (names the backups it makes): 20250301T100000Z. */
export function timestamp(): string {
  return new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/**
 * What every platform's planner takes from the laptop: the image, config.json, busybox, the
 * stage2 kernel, and the device types the image and config.json name. Refuses a busybox the
 * host (of architecture `arch`) cannot run: that is no stage2 at all (platform/busybox-arch.ts).
 */
export async function loadPlanInputs(job: HostJob, arch: string) {
  const { target, settings, resources } = job;
  const imagePath = target.image ?? settings.image;
  const configPath = target.configJson ?? settings.configJson;
  const [image, configJson, busybox] = await Promise.all([
    resources.image(imagePath),
    resources.configJson(configPath),
    resources.bytes(settings.busyboxPath, 'busybox (Debian package busybox-static)'),
  ]);
  const busyboxProblem = busyboxArchProblem(busybox, settings.busyboxPath, arch);
  if (busyboxProblem) throw new RefusalError([busyboxProblem]);
  const kernel =
    settings.kernel === 'host'
      ? ({ source: 'host' } as const)
      : ({ source: 'file', file: await resources.file(settings.kernel) } as const);
  const imageDeviceType = await resources.imageDeviceType(imagePath);
  const configDeviceType = await resources.configDeviceType(configPath);
  return { image, configJson, busybox, kernel, imageDeviceType, configDeviceType };
}

export async function planHost(job: HostJob, session: SshSession, probed: ProbeResult): Promise<Plan> {
  const { target, settings, resources } = job;
  const { facts } = probed;
  const workDir = target.workDir ?? settings.workDir;
  const { image, configJson, busybox, kernel, imageDeviceType, configDeviceType } = await loadPlanInputs(
    job,
    facts.arch,
  );
  const initramfs = await buildHostInitramfs(session, facts, busybox);
  // the old OS's network config, read as root along with the probe: in memory only, never in facts or reports
  const net = settings.network ?? { wifi: 'all' as const, requireNetwork: true, extraFiles: [] };
  const sources = probed.network!();
  const extraFiles = await Promise.all(
    net.extraFiles.map(async (path) => ({ path, data: await resources.bytes(path, 'network keyfile') })),
  );
  const network = planNetwork({
    facts,
    sources: sources.files,
    options: { wifi: net.wifi, requireNetwork: net.requireNetwork, extraFiles },
  });
  for (const skipped of sources.skipped) network.notes.push(`network: ${skipped} (not read)`);
  const result = planMigration({
    hostName: target.name,
    facts,
    mode: settings.mode,
    image,
    configJson,
    workDir,
    kernel,
    initramfs: { data: initramfs.data, sha256: initramfs.sha256 },
    failMode: settings.failMode,
    ramMarginBytes: settings.ramMarginBytes,
    timestamp: timestamp(),
    network,
    stage2Pretend: settings.stage2Pretend ?? false,
    logDevice: settings.logDevice ?? null,
    imageDeviceType,
    configDeviceType,
    allowDeviceTypeMismatch: settings.allowDeviceTypeMismatch ?? false,
    bootManager: settings.bootManager ?? 'auto',
  });
  if (!result.ok) throw new RefusalError(result.reasons);
  const mismatch = job.agent && deviceTypeMismatch(result.plan.deviceType, job.agent.deviceType);
  if (mismatch) throw new RefusalError([mismatch]);
  return result.plan;
}
