import { describe, expect, it } from 'vitest';
import { decodeLoadOption } from '../../orchestrator/facts/windows-efi.ts';
import { freeBootNumber } from '../../orchestrator/platform/windows/plan.ts';
import { parseStage2Config } from '../../stage2/build/stage2-config.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

import {
  asJson,
  expectGolden,
  facts,
  GOOD_KERNEL_CONFIG,
  reasons,
  windowsInput,
  windowsPlan,
} from '../fixtures/windows/plan-input.ts';

describe('planWindowsBoot golden plans', () => {
  it('plans the clean Windows 11 PC exactly as the golden file says', () => {
    expectGolden('win11-uefi-clean.plan.json', asJson(windowsPlan(windowsInput('win11-uefi-clean'))));
  });

  it('plans the startup-nsh fallback exactly as the golden file says', () => {
    const p = windowsPlan(windowsInput('win11-uefi-clean', (i) => (i.windowsFallback = 'startup-nsh')));
    expectGolden('win11-uefi-clean-startup-nsh.plan.json', asJson(p));
  });
});

describe('planWindowsBoot: what goes where', () => {
  const p = windowsPlan(windowsInput('win11-uefi-clean'));

  it('puts kernel and initramfs under \\EFI\\balena-migrate and the stage2 config at the ESP root', () => {
    expect(p.windows.steps.map((s) => [s.kind, 'path' in s ? s.path : 'to' in s ? s.to : s.number])).toEqual([
      ['esp-mkdir', '\\EFI\\balena-migrate'],
      ['esp-copy', '\\EFI\\balena-migrate\\vmlinuz.efi'],
      ['esp-copy', '\\EFI\\balena-migrate\\initramfs.gz'],
      ['esp-write', '\\balena-stage2.yml'],
      ['efi-boot-option', 2],
      ['efi-boot-next', 2],
    ]);
  });

  it('tells stage2 to find the work dir and the install disk by PARTUUID, and to mount NTFS with ntfs3', () => {
    const step = p.windows.steps.find((s) => s.kind === 'esp-write');
    if (step?.kind !== 'esp-write') throw new Error('no stage2 config step');
    const cfg = parseStage2Config(step.content);
    expect(cfg).toMatchObject({
      work_dev: 'PARTUUID=9c3e7a52-1b4d-4f68-8e2a-5d7c9b1f0e43',
      work_fstype: 'ntfs3',
      work_path: 'balena-migrate',
      install_disk_of: 'PARTUUID=4f2b8c1d-93a6-4e7b-b5c2-7d1e9f0a3b64',
      install_disk_size: String(512110190592),
      grubenv: '',
      cleanup: 'EFI/balena-migrate balena-stage2.yml',
      restore_count: '0',
    });
  });

  it('creates a boot option for the EFI-stub kernel with initrd= and root= as its load options', () => {
    const step = p.windows.steps.find((s) => s.kind === 'efi-boot-option');
    if (step?.kind !== 'efi-boot-option') throw new Error('no boot option step');
    const lo = decodeLoadOption(Buffer.from(step.valueHex, 'hex'));
    expect(lo.description).toBe('balena-migrate stage2');
    expect(lo.filePath).toBe('\\EFI\\balena-migrate\\vmlinuz.efi');
    expect(lo.hardDrive).toEqual({
      partitionNumber: 1,
      startLba: 2048n,
      sizeLba: 204800n,
      partitionGuid: '4f2b8c1d-93a6-4e7b-b5c2-7d1e9f0a3b64',
    });
    expect(lo.optionalData.toString('utf16le')).toBe(
      'initrd=\\EFI\\balena-migrate\\initramfs.gz root=PARTUUID=4f2b8c1d-93a6-4e7b-b5c2-7d1e9f0a3b64 console=tty0 panic=10\0',
    );
  });

  it('activates the boot option once through BootNext, as the last step', () => {
    expect(p.windows.steps.at(-1)).toMatchObject({ kind: 'efi-boot-next', number: 2 });
    expect(p.oneShot).toEqual({ mechanism: 'uefi-bootnext', argv: ['BootNext', 'Boot0002'] });
  });

  it('never moves Windows boot files by default', () => {
    expect(p.windows.steps.some((s) => s.kind === 'esp-move')).toBe(false);
    expect(p.windows.restores).toEqual([]);
  });

  it('uploads image, config.json, initramfs and kernel into the work dir, in SFTP path form', () => {
    expect(p.payload.map((f) => [f.role, f.remotePath])).toEqual([
      ['image', 'C:/balena-migrate/balena-image.img.gz'],
      ['config-json', 'C:/balena-migrate/config.json'],
      ['initramfs', 'C:/balena-migrate/stage2-initramfs.gz'],
      ['kernel', 'C:/balena-migrate/vmlinuz.efi'],
    ]);
  });

  it('gives every step an undo', () => {
    for (const s of p.windows.steps) expect(s.undo).not.toBe('');
  });
});

describe('planWindowsBoot: the startup-nsh fallback', () => {
  const p = windowsPlan(windowsInput('win11-uefi-clean', (i) => (i.windowsFallback = 'startup-nsh')));

  it('moves bootx64.efi and bootmgfw.efi into \\efi_backup only when asked, before BootNext is set', () => {
    const moves = p.windows.steps.filter((s) => s.kind === 'esp-move');
    expect(moves.map((s) => (s.kind === 'esp-move' ? [s.from, s.to] : []))).toEqual([
      ['\\EFI\\Boot\\bootx64.efi', '\\efi_backup\\EFI\\Boot\\bootx64.efi'],
      ['\\EFI\\Microsoft\\Boot\\bootmgfw.efi', '\\efi_backup\\EFI\\Microsoft\\Boot\\bootmgfw.efi'],
    ]);
    const kinds = p.windows.steps.map((s) => s.kind);
    expect(kinds.lastIndexOf('esp-move')).toBeLessThan(kinds.indexOf('efi-boot-next'));
  });

  it('records what stage2 must move back first as restore_N_from / restore_N_to, relative to the ESP', () => {
    expect(p.stage2Config).toMatchObject({
      restore_count: 2,
      restore_1_from: 'efi_backup/EFI/Boot/bootx64.efi',
      restore_1_to: 'EFI/Boot/bootx64.efi',
      restore_2_from: 'efi_backup/EFI/Microsoft/Boot/bootmgfw.efi',
      restore_2_to: 'EFI/Microsoft/Boot/bootmgfw.efi',
      cleanup: 'EFI/balena-migrate balena-stage2.yml startup.nsh',
    });
  });

  it('writes a startup.nsh that starts the kernel with the same command line', () => {
    const nsh = p.windows.steps.find((s) => s.kind === 'esp-write' && s.path === '\\startup.nsh');
    if (nsh?.kind !== 'esp-write') throw new Error('no startup.nsh');
    expect(nsh.content).toContain(
      `\\EFI\\balena-migrate\\vmlinuz.efi ${p.windows.bootOption.loadOptions}\r\n`,
    );
  });

  it('refuses when an \\efi_backup from an earlier run is in the way', () => {
    const r = reasons(
      windowsInput('win11-uefi-clean', (i) => {
        i.windowsFallback = 'startup-nsh';
        i.facts.esp!.files['\\efi_backup'] = true;
      }),
    );
    expect(r).toEqual([expect.stringMatching(/^\\efi_backup already exists on the EFI system partition/)]);
  });
});

describe('planWindowsBoot refusals', () => {
  it('refuses Secure Boot and BitLocker on the work dir volume, and says how to fix both', () => {
    expect(reasons(windowsInput('win11-secure-boot-bitlocker'))).toEqual([
      'Secure Boot is enabled: the stage2 kernel is not signed for it and the firmware would refuse to start it; ' +
        'disable Secure Boot in the firmware setup (suspend BitLocker first if it is on), then run check again',
      'BitLocker is on for C: (FullyEncrypted, protection On), which holds the work dir: stage2 cannot read BitLocker ' +
        'volumes; turn it off (manage-bde -off C:) and wait until it is fully decrypted, or choose a work dir on an ' +
        'unencrypted volume',
    ]);
  });

  it('refuses a legacy-BIOS Windows 10', () => {
    const r = reasons(windowsInput('win10-bios-legacy'));
    expect(r).toContain(
      'Microsoft Windows 10 Pro boots through legacy BIOS (firmware_type=Legacy): the Windows path needs UEFI ' +
        'firmware boot entries; such hosts are not supported',
    );
    expect(r).toContain(
      'no EFI system partition to boot stage2 from: no partition of the EFI system partition type was found',
    );
  });

  it('refuses an ESP with too little free space for kernel and initramfs', () => {
    expect(reasons(windowsInput('win10-esp-too-small'))).toEqual([
      'the EFI system partition has 9.0 MiB free, but the stage2 kernel and initramfs need 16.0 MiB with margin; ' +
        'a smaller kernel or initramfs would fit, or free space on it',
    ]);
  });

  it('refuses a work dir on a partition with no GUID (an MBR disk)', () => {
    expect(reasons(windowsInput('win10-workdir-mbr-disk'))).toEqual([
      'the work dir D:\\balena-migrate is on disk 1 partition 1 (D:), which has no partition GUID (an MBR disk): ' +
        'stage2 finds the work dir by PARTUUID; choose a work dir on a GPT disk, such as the system disk',
    ]);
  });

  it('refuses kernel: host with a message that says what to supply', () => {
    const r = reasons(windowsInput('win11-uefi-clean', (i) => (i.kernel = { source: 'host' })));
    expect(r).toEqual([
      expect.stringMatching(/^stage2.kernel is "host", but a Windows host has no Linux kernel to boot/),
    ]);
  });

  it('refuses a non-administrator session', () => {
    const r = reasons(windowsInput('win11-uefi-clean', (i) => (i.facts.isAdmin = false)));
    expect(r).toEqual([expect.stringMatching(/^the SSH user is not an administrator on KIOSK-0042/)]);
  });

  it('refuses when there is not enough RAM for image, config, log and margin', () => {
    const r = reasons(windowsInput('win11-uefi-clean', (i) => (i.facts.memory.totalBytes = 512 * MiB)));
    expect(r).toEqual([expect.stringMatching(/^stage2 holds the image in RAM: it needs 507\.0 MiB/)]);
  });

  it('refuses an install disk smaller than the image', () => {
    const r = reasons(windowsInput('win11-uefi-clean', (i) => (i.image.rawSizeBytes = 600 * GiB)));
    expect(r).toEqual(['the install disk 0 (476.9 GiB) is smaller than the image (600.0 GiB raw)']);
  });

  it('refuses an ESP without a partition GUID', () => {
    const r = reasons(windowsInput('win11-uefi-clean', (i) => (i.facts.esp!.guid = null)));
    expect(r).toEqual(['the EFI system partition (disk 0 partition 1) has no partition GUID']);
  });

  it('refuses when another one-shot boot is already pending', () => {
    const r = reasons(windowsInput('win11-uefi-clean', (i) => (i.facts.efi.bootNext = 7)));
    expect(r).toEqual([expect.stringMatching(/^BootNext is already set to Boot0007/)]);
  });

  it('refuses a kernel that cannot read NTFS, and one that is not an EFI stub', () => {
    const r = reasons(
      windowsInput('win11-uefi-clean', (i) => {
        i.kernelConfig = GOOD_KERNEL_CONFIG.replace(
          'CONFIG_NTFS3_FS=y',
          '# CONFIG_NTFS3_FS is not set',
        ).replace('CONFIG_EFI_STUB=y', 'CONFIG_EFI_STUB=m');
      }),
    );
    expect(r).toEqual([
      'the migration kernel lacks CONFIG_EFI_STUB=y (the firmware starts the kernel as an EFI application); it is m',
      'the migration kernel reads no NTFS (neither CONFIG_NTFS3_FS=y nor CONFIG_NTFS_FS=y) and the work dir ' +
        'C:\\balena-migrate is on NTFS: rebuild the kernel with CONFIG_NTFS3_FS=y',
    ]);
  });

  it('refuses a kernel without the driver for the install disk', () => {
    const r = reasons(
      windowsInput('win11-uefi-clean', (i) => {
        i.kernelConfig = GOOD_KERNEL_CONFIG.replace('CONFIG_BLK_DEV_NVME=y', 'CONFIG_BLK_DEV_NVME=m');
      }),
    );
    expect(r).toEqual([
      'the migration kernel lacks CONFIG_BLK_DEV_NVME=y (the driver for NVMe disks); it is m',
    ]);
  });

  it('refuses a work dir path with a space, which stage2 cannot read from its config', () => {
    const r = reasons(
      windowsInput('win11-uefi-clean', (i) => {
        i.workDir = 'C:\\balena migrate';
        i.facts.workDir.path = 'C:\\balena migrate';
      }),
    );
    expect(r).toEqual([expect.stringMatching(/has characters stage2 cannot use \(spaces among them\)/)]);
  });
});

describe('planWindowsBoot notes', () => {
  it('warns instead of refusing when no kernel config was supplied, and assumes ntfs3', () => {
    const p = windowsPlan(windowsInput('win11-uefi-clean', (i) => (i.kernelConfig = null)));
    expect(p.notes).toContain(
      'no /home/op/kernels/bzImage.config beside the kernel: it could not be checked for CONFIG_EFI_STUB, ' +
        'CONFIG_NTFS3_FS, FAT and the disk drivers; stage2 assumes ntfs3',
    );
    expect(p.stage2Config.work_fstype).toBe('ntfs3');
  });

  it('uses the old ntfs driver when that is the only one the kernel has', () => {
    const p = windowsPlan(
      windowsInput('win11-uefi-clean', (i) => {
        i.kernelConfig = GOOD_KERNEL_CONFIG.replace('CONFIG_NTFS3_FS=y', 'CONFIG_NTFS_FS=y');
      }),
    );
    expect(p.stage2Config.work_fstype).toBe('ntfs');
  });

  it('says that Fast Startup needs a restart, not a shutdown', () => {
    const p = windowsPlan(windowsInput('win11-uefi-clean'));
    expect(p.notes.at(-1)).toBe(
      'Fast Startup is on: the host must be restarted (not shut down) so NTFS is left clean for stage2',
    );
  });
});

describe('freeBootNumber', () => {
  it('takes the lowest number that no boot option, BootOrder entry or BootCurrent uses', () => {
    const f = facts('win10-esp-too-small');
    expect(f.efi.options.map((o) => o.number)).toEqual([3, 0, 1]);
    expect(freeBootNumber(f)).toBe(2);
  });
});
