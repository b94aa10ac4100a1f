// End to end with BIOS GRUB in a layout the base disk does not have: a GPT disk whose GRUB
// core image lives in a BIOS boot partition, with /boot on its own ext4 partition (where
// grub.cfg, grubenv, the stage2 kernel + initramfs and balena-stage2.yml go, at the root of
// that partition). The disk is harness/debian-uefi.ts's, booted by SeaBIOS: Debian's cloud
// images are laid out the same way and boot either way. A stage2 that finds the image damaged
// first sends the VM back to Debian, then `run` takes the same VM to the balenaOS-shaped image.
// The disk's grub.cfg was made on UEFI (with its "UEFI Firmware Settings" entry, which an
// update-grub under SeaBIOS leaves out): the GRUB undo must put back its bytes, not regenerate it.
// Then the same disk under OVMF's secure-boot firmware (shim and signed GRUB boot it), where
// `check` must refuse before anything changes. This file runs beside uefi-migrate.test.ts: two
// TCG VMs at once, one per core.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDebianUefiDisk, OVMF, sshRun, type UefiDisk } from './harness/index.ts';
import {
  balenaRoot,
  bootFingerprint,
  lastHostReport,
  oldOsRoot,
  phaseTimes,
  runCli,
  runWithFault,
  type Scenario,
  SECRET_API_KEY,
  startScenario,
} from './scenario.ts';

const scenarios: Scenario[] = [];
let disk: UefiDisk;
const MOUNTS = ['/boot', '/boot/efi', '/etc'];

beforeAll(async () => {
  disk = await ensureDebianUefiDisk();
}, 900_000);

afterAll(async () => {
  for (const s of scenarios) await s.cleanup();
});

const seconds = (t0: number) => ((Date.now() - t0) / 1000).toFixed(1);

describe('BIOS GRUB on a GPT disk with a BIOS boot partition and /boot on its own partition', () => {
  let s: Scenario | undefined;

  it('a stage2 that finds the image damaged restores grubenv on the /boot partition and goes back to Debian, the disk as it was', async () => {
    const t0 = Date.now();
    s = await startScenario('grub-gpt-bios', { disk: disk.disk, coldReboot: true });
    scenarios.push(s);
    await s.vm.waitForTcpBanner(22, 300_000);
    const root = oldOsRoot(s);
    expect(await sshRun(root, 'test ! -d /sys/firmware/efi && findmnt -n -o SOURCE /boot')).toMatch(
      /^\/dev\/vda3$/m,
    );
    const before = await bootFingerprint(s, MOUNTS);
    const t1 = Date.now();
    const { report, workDir } = await runWithFault(s, {
      fault:
        'printf X | dd of=/var/tmp/balena-migrate/balena-image.img.gz bs=1 seek=4096 conv=notrunc 2>/dev/null',
    });
    console.log(
      `grub-gpt-bios: boot ${seconds(t0)} s incl. run → reverted in ${seconds(t1)} s (${phaseTimes(report)})`,
    );
    expect(report.outcome, `${JSON.stringify(report.error)}\n${s.vm.serialTail(80)}`).toBe('reverted');
    expect(report.bootManager).toBe('grub');
    // the plan: files at the root of the /boot partition, GRUB told so, GPT's module
    const plan = report.plan as { stage2ConfigPath: string; steps: { kind: string; content?: string }[] };
    expect(plan.stage2ConfigPath).toBe('/boot/balena-stage2.yml');
    const entry = plan.steps.find((st) => st.content?.includes('menuentry'))?.content ?? '';
    expect(entry).toContain('\tinsmod part_gpt\n');
    expect(entry).toContain('\tlinux /balena-migrate/vmlinuz root=UUID=');
    expect(report.stage2Log).toMatch(/grubenv: restored grub\/grubenv/);
    expect(report.stage2Log).toMatch(
      /restore: grub\/grub\.cfg replaced from balena-migrate\/grub\.cfg\.orig/,
    );
    expect(report.stage2Log).toMatch(/sha256/i);
    expect(await sshRun(root, `cat ${workDir}/stage2.log`)).toMatch(/sha256/i);
    expect(await sshRun(root, 'grub-editenv list')).not.toMatch(/next_entry=\S/);
    // the UEFI-made grub.cfg, byte for byte: its firmware-settings entry is still there
    expect(await sshRun(root, 'grep -c fwsetup /boot/grub/grub.cfg')).toMatch(/^1$/m);
    expect(await bootFingerprint(s, MOUNTS)).toBe(before);
  }, 900_000);

  it('run then takes the same VM to balenaOS, with config.json and the stage2 log on resin-boot', async () => {
    if (!s) throw new Error('the VM of the previous scenario did not start');
    const t0 = Date.now();
    const result = await runCli(['run', ...s.cliArgs('migrator'), '--json']);
    const { runDir, report } = await lastHostReport(join(s.dir, 'runs'));
    console.log(`grub-gpt-bios: run → migrated in ${seconds(t0)} s (${phaseTimes(report)})`);
    expect(report.outcome, `${result.stderr.slice(-3000)}\n${s.vm.serialTail(80)}`).toBe('migrated');
    expect(result.code).toBe(0);
    const balena = balenaRoot(s);
    expect(await sshRun(balena, 'cat /etc/os-release')).toMatch(/^ID="?balena-os"?$/m);
    expect(JSON.parse(await sshRun(balena, `cat ${s.image.bootMountPoint}/config.json`))).toEqual(
      s.configJson,
    );
    const log = await sshRun(balena, `cat ${s.image.bootMountPoint}/balena-migrate-stage2.log`);
    expect(log).toMatch(/POINT OF NO RETURN/);
    expect(log).toMatch(/grubenv: (restored|.* already as it was)/);
    const everything = execFileSync('sh', ['-c', `cat ${runDir}/*.* ${runDir}/hosts/*/*`]).toString();
    expect(everything + result.stdout + result.stderr + log).not.toContain(SECRET_API_KEY);
    await s.vm.stop(); // an idle TCG VM still takes CPU from the next scenario
  }, 900_000);
});

describe('Secure Boot on (OVMF secure-boot firmware with Microsoft keys, shim and signed GRUB)', () => {
  it('check refuses the host before changing anything, naming Secure Boot', async () => {
    const t0 = Date.now();
    const s = await startScenario('uefi-secure-boot', {
      disk: disk.disk,
      uefi: { code: OVMF.codeSecureBoot, vars: OVMF.varsSecureBoot, secureBoot: true },
    });
    scenarios.push(s);
    await s.vm.waitForTcpBanner(22, 400_000);
    const root = oldOsRoot(s);
    const before = await bootFingerprint(s, MOUNTS);
    const t1 = Date.now();
    const result = await runCli(['check', ...s.cliArgs('migrator'), '--json']);
    const { report } = await lastHostReport(join(s.dir, 'runs'));
    console.log(
      `uefi-secure-boot: boot ${seconds(t0)} s incl. check → refused in ${seconds(t1)} s (${phaseTimes(report)})`,
    );
    expect(report.outcome, `${result.stderr.slice(-3000)}\n${s.vm.serialTail(60)}`).toBe('refused');
    expect(result.code).toBe(1);
    expect(report.refusalReasons?.join('\n')).toMatch(/Secure Boot is enabled/);
    expect(await sshRun(root, 'od -An -tu1 /sys/firmware/efi/efivars/SecureBoot-*')).toMatch(/ 1\s*$/);
    // check changed nothing: no work dir, no boot entry, no GRUB entry, the boot files as they were
    expect(await sshRun(root, 'ls /var/tmp; efibootmgr; ls /etc/grub.d')).not.toMatch(/balena-migrate/);
    expect(await bootFingerprint(s, MOUNTS)).toBe(before);
  }, 900_000);
});
