// `check --facts FILE` and `check --sysroot DIR`: plan hosts without connecting to them.
//
// --facts takes what `probe HOST -o FILE` saved. --sysroot probes a directory tree (a copy or
// a mounted image of a host's filesystem) by running probe.sh with BM_SYSROOT=DIR: every fact
// that is a file (os-release, /proc/cpuinfo, the device tree, config.txt, GRUB's files, ...)
// is read from the tree; what only a running kernel knows (block devices, mounts, where /,
// /boot and the work dir live) comes from the tree's sidecar file `.balena-migrate-sysroot`
// (test/fixtures/sysroots/README.md describes it).
//
// The stage2 initramfs is built for real (busybox, the init) with the kernel modules of
// --modules-dir DIR (a copy of the host's /lib/modules/RELEASE), else of the sysroot's own
// lib/modules/RELEASE, else with none: then its size is a lower bound (modules add 1-5 MiB)
// and a note says so. The network carry-over is not planned offline (its files are read on
// the host, as root); everything else is planned exactly as `check` would.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildInitramfs } from '../../../stage2/build/initramfs.ts';
import { readModulesFromDir } from '../../../stage2/build/modules-fs.ts';
import { ConfigError } from '../../errors.ts';
import { Facts } from '../../facts/facts.ts';
import { parseFacts } from '../../facts/parse.ts';
import { wantedModules } from '../../phases/payload.ts';
import { RunResources } from '../../phases/resources.ts';
import { printablePlan } from '../../phases/run-host.ts';
import type { PlanResult } from '../../plan/plan.ts';
import { busyboxArchProblem } from '../../platform/busybox-arch.ts';
import { planMigration } from '../../platform/plan-migration.ts';
import type { HostReport } from '../../report/host-report.ts';
import { renderPlanText } from '../../report/plan-text.ts';
import type { CommonFlags } from '../options.ts';
import { runSettingsFrom } from '../targets.ts';
import { loadConfigWithFlags } from './fleet.ts';

export const PROBE_SCRIPT = fileURLToPath(new URL('../../../remote-payload/probe.sh', import.meta.url));
/** The sidecar file at the root of a sysroot. */
export const SYSROOT_SIDECAR = '.balena-migrate-sysroot';

export interface OfflineFlags extends CommonFlags {
  facts?: string[];
  sysroot?: string[];
  modulesDir?: string;
}

/** Probes a directory tree as if it were a host (probe.sh with BM_SYSROOT). */
export function probeSysroot(dir: string, workDir: string): Facts {
  const root = resolve(dir);
  if (!existsSync(join(root, SYSROOT_SIDECAR))) {
    throw new ConfigError(
      `${root} has no ${SYSROOT_SIDECAR}: a sysroot needs it for the block devices and mounts`,
      { file: root },
      'write the sidecar (the format is in test/fixtures/sysroots/README.md), or probe the host with `probe HOST -o FILE`',
    );
  }
  const r = spawnSync('sh', [PROBE_SCRIPT, workDir], {
    env: { ...process.env, BM_SYSROOT: root },
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0) throw new ConfigError(`probing ${root} failed: ${r.stderr.trim()}`, { file: root });
  try {
    return parseFacts(r.stdout);
  } catch (e) {
    throw new ConfigError(`${root}: ${(e as Error).message}`, { file: root }, `check ${SYSROOT_SIDECAR}`);
  }
}

/** Facts saved by `probe HOST -o FILE`. */
export function loadFactsFile(path: string): Facts {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ConfigError(`${path} is not a facts file: ${(e as Error).message}`, { file: path });
  }
  const parsed = Facts.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(
      `${path} is not a facts file: ${issue.path.join('.') || '(root)'}: ${issue.message}`,
      { file: path },
      'save the facts again with `balena-migrate probe HOST -o FILE`',
    );
  }
  return parsed.data;
}

export interface OfflineHost {
  name: string;
  facts: Facts;
  /** a local /lib/modules/RELEASE for the initramfs, when there is one */
  modulesDir: string | null;
}

/** Plans one host offline; the result and the notes about what offline could not know. */
export async function planOffline(
  host: OfflineHost,
  settings: ReturnType<typeof runSettingsFrom>,
  resources: RunResources,
): Promise<{ result: PlanResult; notes: string[] }> {
  const notes: string[] = [
    'offline: planned from saved facts, without a connection; the network carry-over is not planned',
  ];
  const busybox = await resources.bytes(settings.busyboxPath, 'busybox (Debian package busybox-static)');
  const busyboxProblem = busyboxArchProblem(busybox, settings.busyboxPath, host.facts.arch);
  if (busyboxProblem) return { result: { ok: false, reasons: [busyboxProblem] }, notes };
  let modules: { relPath: string; data: Buffer }[] = [];
  if (host.modulesDir && existsSync(join(host.modulesDir, 'modules.dep'))) {
    const read = await readModulesFromDir(host.modulesDir, wantedModules(host.facts));
    modules = read.files;
    if (read.unknown.length)
      notes.push(`offline: modules not found in ${host.modulesDir}: ${read.unknown.join(', ')}`);
  } else {
    notes.push(
      'offline: the initramfs holds no kernel modules (no --modules-dir): its size is a lower bound, ' +
        'a host usually adds 1-5 MiB of modules',
    );
  }
  const data = buildInitramfs({ busybox, modules, kernelRelease: host.facts.kernel.release });
  const imagePath = settings.image;
  const [image, configJson] = await Promise.all([
    resources.image(imagePath),
    resources.configJson(settings.configJson),
  ]);
  const kernel =
    settings.kernel === 'host'
      ? ({ source: 'host' } as const)
      : ({ source: 'file', file: await resources.file(settings.kernel) } as const);
  const result = planMigration({
    hostName: host.name,
    facts: host.facts,
    mode: settings.mode,
    image,
    configJson,
    workDir: settings.workDir,
    kernel,
    initramfs: { data, sha256: createHash('sha256').update(data).digest('hex') },
    failMode: settings.failMode,
    ramMarginBytes: settings.ramMarginBytes,
    timestamp: new Date()
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z'),
    stage2Pretend: settings.stage2Pretend ?? false,
    logDevice: settings.logDevice ?? null,
    imageDeviceType: await resources.imageDeviceType(imagePath),
    configDeviceType: await resources.configDeviceType(settings.configJson),
    allowDeviceTypeMismatch: settings.allowDeviceTypeMismatch ?? false,
  });
  return { result, notes };
}

/** The text `check` prints for a host, from an offline plan. */
export function renderOfflinePlan(name: string, result: PlanResult, notes: string[]): string {
  const report = {
    host: name,
    address: 'offline',
    port: 0,
    outcome: result.ok ? 'ready' : 'refused',
    refusalReasons: result.ok ? [] : result.reasons,
    plan: result.ok ? printablePlan({ ...result.plan, notes: [...result.plan.notes, ...notes] }) : null,
    error: null,
  } as unknown as HostReport;
  return renderPlanText(report);
}

/** `check --facts` / `check --sysroot`: exit 0 when every host can be migrated as planned. */
export async function offlineCheckCommand(flags: OfflineFlags): Promise<number> {
  if (flags.inventory || flags.host?.length) {
    throw new ConfigError(
      '--facts and --sysroot plan without connecting; they do not mix with -i or --host',
      { file: 'command line' },
      'run check once with --facts/--sysroot and once with the inventory',
    );
  }
  const config = loadConfigWithFlags(flags);
  const settings = runSettingsFrom(config, 'check');
  const hosts: OfflineHost[] = [];
  for (const file of flags.facts ?? []) {
    const facts = loadFactsFile(file);
    hosts.push({ name: basename(file).replace(/\.json$/, ''), facts, modulesDir: flags.modulesDir ?? null });
  }
  for (const dir of flags.sysroot ?? []) {
    const facts = probeSysroot(dir, settings.workDir);
    const own = facts.kernel.modulesDir ? join(resolve(dir), facts.kernel.modulesDir) : null;
    hosts.push({ name: basename(resolve(dir)), facts, modulesDir: flags.modulesDir ?? own });
  }
  const resources = new RunResources();
  let ready = 0;
  for (const host of hosts) {
    const { result, notes } = await planOffline(host, settings, resources);
    if (result.ok) ready++;
    process.stdout.write(`${renderOfflinePlan(host.name, result, notes)}\n\n`);
  }
  process.stdout.write(`${ready} of ${hosts.length} hosts ready\n`);
  return ready === hosts.length ? 0 : 1;
}
