// End to end on Debian VMs booted by UEFI firmware (OVMF under QEMU TCG) from the GPT disk of
// harness/debian-uefi.ts, with real reboots:
//   - GRUB on UEFI (shim + signed GRUB; grubenv in /boot/grub on its own /boot partition, which
//     is where Debian's grub-efi reads it): grub-reboot's one-shot, stage2 restoring grubenv;
//   - a one-shot UEFI boot entry without GRUB (platform/efi.ts): efibootmgr, BootNext;
// each first sent back to Debian by a stage2 failure, then taken to the balenaOS-shaped image
// on the same VM (which the firmware then boots from the image's removable path).
// The scenarios run one after the other in this file, and grub-variants.test.ts (BIOS GRUB on
// the same disk, and Secure Boot) runs beside it: two TCG VMs at once, one per core.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostReport } from '../../orchestrator/report/host-report.ts';
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
/** What a migration could touch on this disk: /boot, the ESP, /etc (modules are only read). */
const MOUNTS = ['/boot', '/boot/efi', '/etc'];

beforeAll(async () => {
  disk = await ensureDebianUefiDisk();
}, 900_000);

afterAll(async () => {
  for (const s of scenarios) await s.cleanup();
});

async function bootUefiVm(name: string): Promise<Scenario> {
  const s = await startScenario(name, {
    disk: disk.disk,
    uefi: { code: OVMF.code, vars: disk.varsTemplate },
    coldReboot: true,
  });
  scenarios.push(s);
  await s.vm.waitForTcpBanner(22, 300_000);
  return s;
}

const seconds = (t0: number) => ((Date.now() - t0) / 1000).toFixed(1);

/** `run` through the real CLI; the VM must end on balenaOS with our config.json and the stage2 log. */
async function migrateWithCli(s: Scenario, extra: string[]): Promise<{ log: string; report: HostReport }> {
  const result = await runCli(['run', ...s.cliArgs('root'), '--json', ...extra]);
  const { runDir, report } = await lastHostReport(join(s.dir, 'runs'));
  expect(report.outcome, `${result.stderr.slice(-3000)}\n${s.vm.serialTail(80)}`).toBe('migrated');
  expect(result.code).toBe(0);
  const balena = balenaRoot(s);
  expect(await sshRun(balena, 'cat /etc/os-release')).toMatch(/^ID="?balena-os"?$/m);
  expect(JSON.parse(await sshRun(balena, `cat ${s.image.bootMountPoint}/config.json`))).toEqual(s.configJson);
  const log = await sshRun(balena, `cat ${s.image.bootMountPoint}/balena-migrate-stage2.log`);
  expect(log).toMatch(/POINT OF NO RETURN/);
  const everything = execFileSync('sh', ['-c', `cat ${runDir}/*.* ${runDir}/hosts/*/*`]).toString();
  expect(everything + result.stdout + result.stderr + log).not.toContain(SECRET_API_KEY);
  return { log, report };
}

describe('GRUB on UEFI firmware (Debian grub-efi, grubenv on the /boot partition)', () => {
  let s: Scenario | undefined;

  it('a stage2 that finds the image damaged restores grubenv, goes back to Debian, and leaves /boot, the ESP and the boot entries as they were', async () => {
    const t0 = Date.now();
    s = await bootUefiVm('uefi-grub');
    const root = oldOsRoot(s);
    const before = await bootFingerprint(s, MOUNTS);
    const t1 = Date.now();
    const { report, workDir } = await runWithFault(s, {
      bootManager: 'auto',
      fault:
        'printf X | dd of=/var/tmp/balena-migrate/balena-image.img.gz bs=1 seek=4096 conv=notrunc 2>/dev/null',
    });
    console.log(
      `uefi-grub: boot ${seconds(t0)} s incl. run → reverted in ${seconds(t1)} s (${phaseTimes(report)})`,
    );
    expect(report.outcome, `${JSON.stringify(report.error)}\n${s.vm.serialTail(80)}`).toBe('reverted');
    expect(report.bootManager).toBe('grub');
    expect(report.stage2Log).toMatch(/sha256/i);
    expect(report.stage2Log).toMatch(/grubenv: restored grub\/grubenv/);
    // stage2 itself put the former grub.cfg back (the undo then finds it as it was)
    expect(report.stage2Log).toMatch(
      /restore: grub\/grub\.cfg replaced from balena-migrate\/grub\.cfg\.orig/,
    );
    expect(await sshRun(root, `cat ${workDir}/stage2.log`)).toMatch(/sha256/i);
    expect(await sshRun(root, 'grub-editenv list')).not.toMatch(/next_entry=\S/);
    expect(await sshRun(root, 'cat /sys/firmware/efi/efivars/SecureBoot-* | od -An -tu1')).toMatch(/ 0\s*$/);
    expect(await bootFingerprint(s, MOUNTS)).toBe(before);
  }, 900_000);

  it('run then takes the same VM to balenaOS, which the firmware boots from the image', async () => {
    if (!s) throw new Error('the VM of the previous scenario did not start');
    const t0 = Date.now();
    const { log, report } = await migrateWithCli(s, []);
    console.log(`uefi-grub: run → migrated in ${seconds(t0)} s (${phaseTimes(report)})`);
    expect(log).toMatch(/grubenv: (restored|.* already as it was)/);
    await s.vm.stop(); // an idle TCG VM still takes CPU from the next scenario
  }, 900_000);
});

describe('a one-shot UEFI boot entry instead of GRUB (efibootmgr and BootNext)', () => {
  let s: Scenario | undefined;

  it('a stage2 kernel that panics is started only once: the firmware falls back to Debian, and the entry, BootNext and the ESP files are gone again', async () => {
    const t0 = Date.now();
    s = await bootUefiVm('uefi-efi-entry');
    const before = await bootFingerprint(s, MOUNTS);
    const serialFrom = s.vm.serialOffset();
    const t1 = Date.now();
    // garbage over the start of the initramfs: the kernel cannot unpack it, finds no root it can
    // mount and panics (panic=10 reboots); stage2 itself never runs and cannot clean up
    const { report } = await runWithFault(s, {
      bootManager: 'efi',
      fault:
        'dd if=/dev/urandom of=/boot/efi/EFI/balena-migrate/stage2-initramfs.gz bs=4096 count=16 conv=notrunc 2>/dev/null && sync',
    });
    console.log(
      `uefi-efi-entry: boot ${seconds(t0)} s incl. run → reverted in ${seconds(t1)} s (${phaseTimes(report)})`,
    );
    const after = execFileSync('sh', [
      '-c',
      `tail -c +${serialFrom + 1} ${s.vm.serialLogPath} | tr -d '\\r'`,
    ]).toString('latin1');
    expect(report.outcome, `${JSON.stringify(report.error)}\n${s.vm.serialTail(120)}`).toBe('reverted');
    expect(report.bootManager).toBe('efi');
    const entry = String(
      (report.plan as { stage2Config: Record<string, string> }).stage2Config.efi_remove_entry,
    );
    expect(entry).toMatch(/^Boot[0-9A-F]{4}$/);
    // the firmware started the entry exactly once, the kernel panicked, and the next boot was Debian's entry
    const starts = after.match(/BdsDxe: starting Boot[0-9A-F]{4} "balena-migrate stage2"/g) ?? [];
    expect(starts).toHaveLength(1);
    expect(after).toMatch(/Kernel panic/);
    expect(after.slice(after.indexOf('Kernel panic'))).toMatch(/BdsDxe: starting Boot0001 "debian"/);
    // no stage2 log (it never ran), the undo removed the entry and the files; BootNext is used up
    expect(report.stage2Log ?? '').not.toMatch(/stage2 starting/);
    expect(report.error?.message).toMatch(/stage2 left no log: .*efi-bootnext/);
    const efi = await sshRun(oldOsRoot(s), 'efibootmgr');
    expect(efi).not.toMatch(/BootNext/);
    expect(efi).not.toMatch(/balena-migrate/);
    expect(await bootFingerprint(s, MOUNTS)).toBe(before);
  }, 900_000);

  it('run then takes the same VM to balenaOS, and stage2 deletes its boot entry first thing', async () => {
    if (!s) throw new Error('the VM of the previous scenario did not start');
    const t0 = Date.now();
    const { log, report } = await migrateWithCli(s, ['--boot-manager', 'efi']);
    console.log(`uefi-efi-entry: run → migrated in ${seconds(t0)} s (${phaseTimes(report)})`);
    expect(log).toMatch(/efi: deleted the one-shot boot entry Boot[0-9A-F]{4}/);
    expect(log).toMatch(/grubenv: nothing to restore/);
    await s.vm.stop();
  }, 900_000);
});
