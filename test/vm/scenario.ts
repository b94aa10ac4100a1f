// One migration scenario on the VM test bed: a Debian VM booted from the cached base disk
// (through a copy-on-write overlay), a known_hosts file that pins its host key, and a
// config.json whose os.sshKeys lets the test (and the orchestrator) into balenaOS afterwards.
// Shared by the end-to-end tests and `npm run demo`.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSettingsFrom } from '../../orchestrator/cli/targets.ts';
import { applyConfigOverrides, defaultMigrationConfig } from '../../orchestrator/config/migration-config.ts';
import { RunResources } from '../../orchestrator/phases/resources.ts';
import { runHost } from '../../orchestrator/phases/run-host.ts';
import type { HostReport } from '../../orchestrator/report/host-report.ts';
import {
  type BalenaTestImage,
  type BaseDisk,
  ensureBalenaTestImage,
  ensureDebianBase,
  knownHostsLine,
  type SshTarget,
  type StartVmOptions,
  sshRun,
  startVm,
  type Vm,
} from './harness/index.ts';

export interface Scenario {
  base: BaseDisk;
  image: BalenaTestImage;
  vm: Vm;
  dir: string;
  knownHostsFile: string;
  configJsonPath: string;
  configJson: Record<string, unknown>;
  sshPort: number;
  balenaPort: number;
  /** flags that point `balena-migrate run` at this VM */
  cliArgs(user: 'root' | 'migrator'): string[];
  cleanup(): Promise<void>;
}

/** A secret that must never show up in logs or reports (tests look for it). */
export const SECRET_API_KEY = 'bm-test-secret-5f1d2c9a7e';

export interface ScenarioOptions {
  memMiB?: number;
  /** another disk to boot than the base disk, with the base disk's keys (e.g. debian-uefi.ts) */
  disk?: string;
  /** boot it with UEFI firmware (OVMF) */
  uefi?: StartVmOptions['uefi'];
  /** a new QEMU process at each guest reboot (StartVmOptions.coldReboot): much quicker under TCG */
  coldReboot?: boolean;
}

export async function startScenario(name: string, opts: ScenarioOptions = {}): Promise<Scenario> {
  const base = await ensureDebianBase();
  const image = await ensureBalenaTestImage();
  const dir = await mkdtemp(join(tmpdir(), `bm-${name}-`));
  const vm = await startVm({
    name,
    disk: opts.disk ?? base.disk,
    ...(opts.uefi ? { uefi: opts.uefi } : {}),
    ...(opts.coldReboot ? { coldReboot: true } : {}),
    memMiB: opts.memMiB ?? 1024,
    forwards: [{ guestPort: 22 }, { guestPort: image.sshPort }],
  });
  const sshPort = vm.hostPort(22);
  const balenaPort = vm.hostPort(image.sshPort);
  const knownHostsFile = join(dir, 'known_hosts');
  await writeFile(knownHostsFile, `${knownHostsLine(sshPort, base.hostPublicKey)}\n`);
  const configJson = {
    deviceType: 'genericx86-64-ext',
    applicationName: 'bm-test-fleet',
    apiKey: SECRET_API_KEY,
    os: { sshKeys: [base.sshPublicKey.trim()] },
  };
  const configJsonPath = join(dir, 'config.json');
  await writeFile(configJsonPath, `${JSON.stringify(configJson, null, 2)}\n`, { mode: 0o600 });
  return {
    base,
    image,
    vm,
    dir,
    knownHostsFile,
    configJsonPath,
    configJson,
    sshPort,
    balenaPort,
    cliArgs: (user) => [
      '--host',
      `${user}@127.0.0.1:${sshPort}`,
      '--image',
      image.imgGz,
      '--config-json',
      configJsonPath,
      '--known-hosts',
      knownHostsFile,
      '--identity',
      base.sshKeyPath,
      '--no-agent',
      '--balena-port',
      String(balenaPort),
      '--verify-timeout',
      '900',
      '--runs-dir',
      join(dir, 'runs'),
    ],
    cleanup: async () => {
      await vm.stop();
      if (!process.env.BALENA_MIGRATE_KEEP_VMS) await rm(dir, { recursive: true, force: true });
    },
  };
}

const repo = join(import.meta.dirname, '..', '..');

/** Runs the real CLI (bin/balena-migrate.js) in a child process, without an ssh-agent. */
export function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repo, 'bin/balena-migrate.js'), ...args], {
      cwd: repo,
      env: { ...process.env, SSH_AUTH_SOCK: '' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The report of the one host of the newest run in RUNSDIR (a `run` or `check` of one host). */
export async function lastHostReport(runsDir: string): Promise<{ runDir: string; report: HostReport }> {
  const runs = (await readdir(runsDir)).sort();
  const runDir = join(runsDir, runs.at(-1)!);
  const [host] = await readdir(join(runDir, 'hosts'));
  const report = JSON.parse(
    await readFile(join(runDir, 'hosts', host!, 'report.json'), 'utf8'),
  ) as HostReport;
  return { runDir, report };
}

/** SSH as root to the scenario's old OS (for checks the tests make themselves). */
export function oldOsRoot(s: Scenario): SshTarget {
  return {
    port: s.sshPort,
    user: 'root',
    privateKeyPath: s.base.sshKeyPath,
    hostPublicKey: s.base.hostPublicKey,
  };
}

/** SSH as root to balenaOS on the scenario's VM, once the image runs (port 22222). */
export function balenaRoot(s: Scenario): SshTarget {
  return {
    port: s.balenaPort,
    user: 'root',
    privateKeyPath: s.base.sshKeyPath,
    hostPublicKey: s.image.hostPublicKey,
  };
}

/**
 * `balena-migrate run` for the scenario's VM through the pipeline itself (runHost), with a
 * fault: `fault` runs as root on the host once the boot setup is applied, just before the
 * reboot (e.g. damage the uploaded image so stage2 must refuse it). With
 * BALENA_MIGRATE_VM_TRACE=1 the pipeline's progress, log and retry events go to stderr, timed.
 */
export async function runWithFault(
  s: Scenario,
  opts: { fault: string; bootManager?: 'auto' | 'grub' | 'efi'; user?: 'root' | 'migrator' },
): Promise<{ report: HostReport; workDir: string }> {
  const config = applyConfigOverrides(defaultMigrationConfig(s.dir), {
    image: s.image.imgGz,
    configJson: s.configJsonPath,
    ssh: { knownHostsFile: s.knownHostsFile, identityFiles: [s.base.sshKeyPath], useAgent: false },
    verify: { balenaPort: s.balenaPort, timeoutSeconds: 900 },
    ...(opts.bootManager ? { stage2: { bootManager: opts.bootManager } } : {}),
  });
  const settings = runSettingsFrom(config, 'run');
  const report = await runHost({
    target: { name: s.vm.name, address: '127.0.0.1', port: s.sshPort, user: opts.user ?? 'migrator' },
    settings,
    resources: new RunResources(),
    prompts: {},
    ctx: {
      wave: 1,
      signal: new AbortController().signal,
      phase: (name) => {
        if (name !== 'reboot') return;
        execFileSync('ssh', [
          '-p',
          String(s.sshPort),
          '-i',
          s.base.sshKeyPath,
          '-o',
          `UserKnownHostsFile=${s.knownHostsFile}`,
          '-o',
          'BatchMode=yes',
          'root@127.0.0.1',
          opts.fault,
        ]);
      },
      progress: (done, total, label) => {
        if (process.env.BALENA_MIGRATE_VM_TRACE)
          console.error(`${new Date().toISOString()} ${done}/${total} ${label ?? ''}`);
      },
      log: (m) => {
        if (process.env.BALENA_MIGRATE_VM_TRACE) console.error(`${new Date().toISOString()} log ${m}`);
      },
      retry: (m) => {
        if (process.env.BALENA_MIGRATE_VM_TRACE) console.error(`${new Date().toISOString()} retry ${m}`);
      },
    },
  });
  return { report, workDir: settings.workDir };
}

/**
 * Hashes of everything on the old OS a migration could touch outside its work dir: the files
 * under the given mount points (each on its own filesystem), the first MiB of the disk (MBR or
 * GPT, a BIOS boot partition starts right after), and, on UEFI, the boot entries and BootOrder.
 */
export function bootFingerprint(
  s: Scenario,
  mounts = ['/boot', '/etc', '/usr/lib/modules'],
): Promise<string> {
  const volatile = ['/etc/resolv.conf', '/etc/adjtime', '/etc/machine-id'];
  const excludes = volatile.map((p) => `! -path ${p}`).join(' ');
  return sshRun(
    oldOsRoot(s),
    [
      'set -e',
      `find ${mounts.join(' ')} -xdev -type f ${excludes} -print0 | sort -z | xargs -0 sha256sum`,
      'ls -1a /',
      'echo first MiB and the BIOS boot partition; dd if=/dev/vda bs=1M count=2 2>/dev/null | sha256sum',
      'if [ -d /sys/firmware/efi ]; then efibootmgr -v | grep -v -e "^BootCurrent:"; fi',
    ].join('\n'),
    120_000,
  );
}

/** `probe 2.1 s, plan 0.4 s, ...`: where a run's time went, for the timing lines the VM tests print. */
export function phaseTimes(report: HostReport): string {
  return report.phases
    .map((p) => `${p.name} ${p.durationMs === null ? '?' : (p.durationMs / 1000).toFixed(1)} s`)
    .join(', ');
}
