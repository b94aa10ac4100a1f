// End to end on a real Debian VM with GRUB (QEMU, TCG): `balena-migrate run` takes it to a
// balenaOS-shaped image through a real reboot into stage2 and another into the image; and a
// stage2 that finds the image's hash wrong goes back to Debian by itself, leaving the disk
// as it was outside the working directory.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runSettingsFrom } from '../../orchestrator/cli/targets.ts';
import { applyConfigOverrides, defaultMigrationConfig } from '../../orchestrator/config/migration-config.ts';
import { RunResources } from '../../orchestrator/phases/resources.ts';
import { runHost } from '../../orchestrator/phases/run-host.ts';
import type { HostReport } from '../../orchestrator/report/host-report.ts';
import { sshRun } from './harness/index.ts';
import { balenaRoot, oldOsRoot, type Scenario, SECRET_API_KEY, startScenario } from './scenario.ts';

const repo = join(import.meta.dirname, '..', '..');
const scenarios: Scenario[] = [];

afterAll(async () => {
  for (const s of scenarios) await s.cleanup();
});

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
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

async function onlyRunDir(runsDir: string): Promise<string> {
  const [name] = await readdir(runsDir);
  return join(runsDir, name!);
}

/** Hashes of everything on the Debian disk that a migration could touch outside the work dir. */
function diskFingerprint(s: Scenario): Promise<string> {
  const volatile = ['/etc/resolv.conf', '/etc/adjtime', '/etc/machine-id'];
  const excludes = volatile.map((p) => `! -path ${p}`).join(' ');
  return sshRun(
    oldOsRoot(s),
    [
      'set -e',
      `find /boot /etc /usr/lib/modules -xdev -type f ${excludes} -print0 | sort -z | xargs -0 sha256sum`,
      'ls -1a /',
      'echo MBR+gap; dd if=/dev/vda bs=512 count=2048 2>/dev/null | sha256sum',
    ].join('\n'),
    120_000,
  );
}

describe('migrating a Debian VM with GRUB', () => {
  it('run takes the VM to the balenaOS image, with config.json and the stage2 log on resin-boot', async () => {
    const s = await startScenario('e2e-migrate');
    scenarios.push(s);
    await s.vm.waitForTcpBanner(22, 180_000);

    const t0 = Date.now();
    const result = await runCli(['run', ...s.cliArgs('root'), '--json']);
    const seconds = (Date.now() - t0) / 1000;
    const runDir = await onlyRunDir(join(s.dir, 'runs'));
    const [hostDir] = await readdir(join(runDir, 'hosts'));
    const report = JSON.parse(
      readFileSync(join(runDir, 'hosts', hostDir!, 'report.json'), 'utf8'),
    ) as HostReport;
    console.log(`scenario 1: run → migrated in ${seconds.toFixed(1)} s`);
    expect(report.outcome, `${result.stderr}\n${s.vm.serialTail(60)}`).toBe('migrated');
    expect(result.code).toBe(0);

    // The VM now runs the image: its os-release, the config.json we gave, and stage2's log.
    const balena = balenaRoot(s);
    expect(await sshRun(balena, 'cat /etc/os-release')).toMatch(/^ID="?balena-os"?$/m);
    const configOnDevice = JSON.parse(await sshRun(balena, `cat ${s.image.bootMountPoint}/config.json`));
    expect(configOnDevice).toEqual(s.configJson);
    const log = await sshRun(balena, `cat ${s.image.bootMountPoint}/balena-migrate-stage2.log`);
    expect(log).toMatch(/point of no return/i);
    expect(report.stage2Log).toContain(log.trim().split('\n')[0]);

    // Secrets stay out of everything the run wrote and printed.
    const everything = execFileSync('sh', ['-c', `cat ${runDir}/*.* ${runDir}/hosts/*/*`]).toString();
    expect(everything + result.stdout + result.stderr + log).not.toContain(SECRET_API_KEY);

    // Running the same command again touches nothing: the host is recognised as migrated.
    const again = await runCli(['run', ...s.cliArgs('root'), '--runs-dir', join(s.dir, 'runs-again')]);
    expect(again.code, again.stderr).toBe(0);
    const againDir = await onlyRunDir(join(s.dir, 'runs-again'));
    const [againHost] = await readdir(join(againDir, 'hosts'));
    const second = JSON.parse(
      readFileSync(join(againDir, 'hosts', againHost!, 'report.json'), 'utf8'),
    ) as HostReport;
    expect(second.outcome).toBe('migrated');
    expect(second.bytesSent).toBe(0);
  }, 1_800_000);

  it('a stage2 that finds the image hash wrong goes back to Debian by itself and the run says reverted', async () => {
    const s = await startScenario('e2e-revert');
    scenarios.push(s);
    await s.vm.waitForTcpBanner(22, 180_000);
    const root = oldOsRoot(s);
    const before = await diskFingerprint(s);

    const config = applyConfigOverrides(defaultMigrationConfig(s.dir), {
      image: s.image.imgGz,
      configJson: s.configJsonPath,
      ssh: { knownHostsFile: s.knownHostsFile, identityFiles: [s.base.sshKeyPath], useAgent: false },
      verify: { balenaPort: s.balenaPort, timeoutSeconds: 900 },
    });
    const settings = runSettingsFrom(config, 'run');
    const workDir = settings.workDir;
    const t0 = Date.now();
    const report = await runHost({
      target: { name: 'debian-vm', address: '127.0.0.1', port: s.sshPort, user: 'migrator' },
      settings,
      resources: new RunResources(),
      prompts: {},
      ctx: {
        wave: 1,
        signal: new AbortController().signal,
        // The fault: once the transaction is applied and just before the reboot, one byte of
        // the uploaded image changes on the host, so stage2's sha256 check must catch it.
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
            `printf X | dd of=${workDir}/balena-image.img.gz bs=1 seek=4096 conv=notrunc 2>/dev/null`,
          ]);
        },
        progress: () => {},
        log: () => {},
        retry: () => {},
      },
    });
    console.log(`scenario 2: run → reverted in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    expect(report.outcome, `${JSON.stringify(report.error)}\n${s.vm.serialTail(60)}`).toBe('reverted');
    expect(report.stage2Log).toMatch(/sha256/i);
    expect(await sshRun(root, `cat ${workDir}/stage2.log`)).toMatch(/sha256/i);

    // Back on Debian, with everything outside the working directory as it was.
    expect(await sshRun(root, 'cat /etc/os-release')).toMatch(/^ID=debian$/m);
    expect(await sshRun(root, 'grub-editenv list')).not.toMatch(/next_entry=\S/);
    expect(await diskFingerprint(s)).toBe(before);
  }, 1_800_000);
});
