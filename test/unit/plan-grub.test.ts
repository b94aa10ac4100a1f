import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Plan, PlanInput } from '../../orchestrator/plan/plan.ts';
import {
  GRUB_D_SCRIPT,
  planGrubBoot,
  stage2Consoles,
  stage2KernelArgs,
} from '../../orchestrator/platform/grub.ts';
import { parseStage2Config } from '../../stage2/build/stage2-config.ts';
import { factsFixture, factsPlanInput } from '../fixtures/facts-plans.ts';
import { expectGolden, expectPlan, expectRefusal, goldenJson } from '../fixtures/golden-plans.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** A plan input for a fixture host: a 250 MiB gzip image of 1.5 GiB raw, the host's kernel. */
function input(name: string, edit: (i: PlanInput) => void = () => {}): PlanInput {
  const shape = {
    fileSizeBytes: 250 * MiB,
    rawSizeBytes: 1536 * MiB,
    workDir: '/var/tmp/balena-migrate',
    ramMarginBytes: 256 * MiB,
  };
  return factsPlanInput(name, factsFixture(name), shape, edit);
}

const plan = (i: PlanInput): Plan => expectPlan(planGrubBoot(i));
const reasons = (i: PlanInput): string[] => expectRefusal(planGrubBoot(i));

function grubScript(p: Plan): string {
  const step = p.steps.find((s) => s.kind === 'write' && s.path === GRUB_D_SCRIPT);
  if (step?.kind !== 'write') throw new Error('no grub.d step');
  return step.content;
}

describe('planGrubBoot golden plans', () => {
  it('plans the Debian BIOS VM exactly as the golden file says', () => {
    expectGolden('debian-bookworm-bios-virtio.json', goldenJson(plan(input('debian-bookworm-bios-virtio'))));
  });

  it('plans the Ubuntu UEFI NUC exactly as the golden file says', () => {
    expectGolden(
      'ubuntu-nuc-uefi-separate-boot.json',
      goldenJson(plan(input('ubuntu-nuc-uefi-separate-boot'))),
    );
  });

  it('writes a grub.d entry with /boot-on-root paths, part_msdos and the root partition UUID', () => {
    expect(grubScript(plan(input('debian-bookworm-bios-virtio')))).toBe(
      [
        '#!/bin/sh',
        '# Written by balena-migrate: the one-shot entry into the stage2 initramfs.',
        '# `grub-reboot balena-migrate-stage2` selects it for one boot; undo removes this file and',
        '# puts the former grub.cfg back, byte for byte.',
        "cat <<'BALENA_MIGRATE_EOF'",
        "menuentry 'balena-migrate stage2' --id balena-migrate-stage2 --unrestricted {",
        '\tinsmod part_msdos',
        '\tinsmod ext2',
        '\tsearch --no-floppy --fs-uuid --set=root 8c0f3a52-7f3e-4c4b-9a8e-2f1d6b5e4a37',
        '\tlinux /boot/balena-migrate/vmlinuz root=UUID=8c0f3a52-7f3e-4c4b-9a8e-2f1d6b5e4a37 console=tty0 panic=10',
        '\tinitrd /boot/balena-migrate/stage2-initramfs.gz',
        '}',
        'BALENA_MIGRATE_EOF',
        '',
      ].join('\n'),
    );
  });

  it('writes a grub.d entry relative to a separate /boot partition, with part_gpt and its UUID', () => {
    const script = grubScript(plan(input('ubuntu-nuc-uefi-separate-boot')));
    expect(script).toContain('\tinsmod part_gpt\n\tinsmod ext2\n');
    expect(script).toContain(
      '\tsearch --no-floppy --fs-uuid --set=root 6f1e8d2c-4a7b-4c3e-9f5d-0b2a8c6e1d47\n',
    );
    expect(script).toContain(
      '\tlinux /balena-migrate/vmlinuz root=UUID=6f1e8d2c-4a7b-4c3e-9f5d-0b2a8c6e1d47 console=tty0 panic=10\n',
    );
    expect(script).toContain('\tinitrd /balena-migrate/stage2-initramfs.gz\n');
  });
});

describe('planGrubBoot plan contents', () => {
  it('takes the steps in the safe order, ending with the one-shot grub-reboot and its check', () => {
    const p = plan(input('debian-bookworm-bios-virtio'));
    expect(p.steps.map((s) => s.description)).toEqual([
      'create /boot/balena-migrate for the stage2 kernel and initramfs',
      "copy the host's installed kernel /boot/vmlinuz-6.1.0-18-amd64",
      'copy the stage2 initramfs',
      'keep a copy of /boot/grub/grub.cfg for stage2 to put back',
      'add the GRUB menu entry balena-migrate-stage2',
      'regenerate /boot/grub/grub.cfg',
      'check that /boot/grub/grub.cfg now has the stage2 entry',
      'write the stage2 config /balena-stage2.yml',
      'boot balena-migrate-stage2 once, on the next reboot',
      'check that /boot/grub/grubenv now names the one-shot entry',
    ]);
    expect(p.steps[3]).toEqual({
      kind: 'exec',
      argv: ['cp', '-p', '/boot/grub/grub.cfg', '/boot/balena-migrate/grub.cfg.orig'],
      undo: [],
      backup: ['/boot/balena-migrate/grub.cfg.orig'],
      description: 'keep a copy of /boot/grub/grub.cfg for stage2 to put back',
    });
    // undo puts grub.cfg (and grubenv) back byte for byte instead of running update-grub again
    expect(p.steps[5]).toEqual({
      kind: 'exec',
      argv: ['/usr/sbin/update-grub'],
      undo: [],
      backup: ['/boot/grub/grub.cfg', '/boot/grub/grubenv'],
      description: 'regenerate /boot/grub/grub.cfg',
    });
    expect(p.steps[8]).toMatchObject({
      argv: ['/usr/sbin/grub-reboot', 'balena-migrate-stage2'],
      backup: ['/boot/grub/grubenv'],
    });
    expect(p.oneShot).toEqual({
      mechanism: 'grub-reboot',
      argv: ['/usr/sbin/grub-reboot', 'balena-migrate-stage2'],
    });
  });

  it('puts the payload in the work dir, config.json private', () => {
    const p = plan(input('debian-bookworm-bios-virtio'));
    expect(p.payload.map((f) => [f.role, f.remotePath, f.mode.toString(8)])).toEqual([
      ['image', '/var/tmp/balena-migrate/balena-image.img.gz', '600'],
      ['config-json', '/var/tmp/balena-migrate/config.json', '600'],
      ['initramfs', '/var/tmp/balena-migrate/stage2-initramfs.gz', '644'],
    ]);
  });

  it('writes a stage2 config that meets the stage2 contract, paths relative to the /boot partition', () => {
    const p = plan(input('ubuntu-nuc-uefi-separate-boot'));
    const step = p.steps.find((s) => s.kind === 'write' && s.path === '/boot/balena-stage2.yml');
    if (step?.kind !== 'write') throw new Error('no stage2 config step');
    const cfg = parseStage2Config(step.content);
    expect(cfg).toEqual({
      version: '1',
      mode: 'flash',
      fail_mode: 'reboot',
      grubenv: 'grub/grubenv',
      grubenv_b64: expect.stringMatching(/^[A-Za-z0-9+/]+=*$/),
      work_dev: 'UUID=b7e2c9a4-1f3d-4e6a-8b5c-9d0e2f4a6c81',
      work_fstype: 'ext4',
      work_path: 'var/tmp/balena-migrate',
      install_disk_of: 'UUID=b7e2c9a4-1f3d-4e6a-8b5c-9d0e2f4a6c81',
      install_disk_size: '500107862016',
      image_file: 'balena-image.img.gz',
      image_compression: 'gzip',
      image_sha256: 'a1'.repeat(32),
      image_size: String(250 * MiB),
      image_raw_size: String(1536 * MiB),
      image_raw_sha256: 'b2'.repeat(32),
      config_file: 'config.json',
      config_sha256: 'c3'.repeat(32),
      network_files: '',
      network_sha256: '',
      ram_margin: String(256 * MiB),
      boot_label: 'resin-boot',
      log_name: 'stage2.log',
      log_device: '',
      watchdog: '',
      cleanup: 'balena-migrate balena-stage2.yml',
      restore_count: '1',
      restore_1_from: 'balena-migrate/grub.cfg.orig',
      restore_1_to: 'grub/grub.cfg',
    });
    const env = Buffer.from(cfg.grubenv_b64!, 'base64');
    expect(env.length).toBe(1024);
    expect(env.toString('base64')).toBe(input('ubuntu-nuc-uefi-separate-boot').facts.grub.envBase64);
    expect(p.stage2ConfigPath).toBe('/boot/balena-stage2.yml');
  });

  it('boots a supplied kernel from the work dir and verifies its copy by hash', () => {
    const p = plan(
      input('debian-bookworm-bios-virtio', (i) => {
        i.kernel = {
          source: 'file',
          file: { path: '/home/op/vmlinuz-6.1', sizeBytes: 8 * MiB, sha256: 'e5'.repeat(32) },
        };
      }),
    );
    expect(p.payload.at(-1)).toMatchObject({ role: 'kernel', remotePath: '/var/tmp/balena-migrate/vmlinuz' });
    expect(p.steps[1]).toMatchObject({
      kind: 'copy',
      from: '/var/tmp/balena-migrate/vmlinuz',
      to: '/boot/balena-migrate/vmlinuz',
      sha256: 'e5'.repeat(32),
    });
  });

  it('asks stage2 to delete grubenv on the way back when there was none before', () => {
    const p = plan(
      input('debian-bookworm-bios-virtio', (i) => {
        i.facts.grub.envFile = null;
        i.facts.grub.envBase64 = null;
      }),
    );
    expect(p.stage2Config.grubenv).toBe('boot/grub/grubenv');
    expect(p.stage2Config.grubenv_b64).toBe('');
  });

  it('says pretend to stage2 in pretend mode, uses grub-mkconfig -o without update-grub, and a raw image name', () => {
    const p = plan(
      input('ubuntu-nuc-uefi-separate-boot', (i) => {
        i.mode = 'pretend';
        i.facts.grub.updateGrub = null;
        i.image.compression = 'none';
        i.image.fileSizeBytes = i.image.rawSizeBytes;
      }),
    );
    expect(p.stage2Config).toMatchObject({
      mode: 'pretend',
      image_file: 'balena-image.img',
      image_compression: 'none',
    });
    expect(p.steps[5]).toMatchObject({ argv: ['/usr/sbin/grub-mkconfig', '-o', '/boot/grub/grub.cfg'] });
  });

  it('is pure: the same input gives the same plan, and the facts are left untouched', () => {
    const i = input('ubuntu-nuc-uefi-separate-boot');
    const before = structuredClone(i.facts);
    expect(goldenJson(plan(i))).toBe(goldenJson(plan(i)));
    expect(i.facts).toEqual(before);
  });
});

describe('planGrubBoot refusals', () => {
  it('refuses the LVM host with every reason at once', () => {
    expect(reasons(input('debian-boot-on-lvm'))).toEqual([
      'GRUB cannot rewrite its environment block at boot (/boot/grub is on LVM (dm-0), where GRUB cannot write grubenv): grub-reboot would never clear itself and the host would boot stage2 again and again',
      '/boot is on dm-0 (LVM vg0-root), not a plain disk partition: GRUB and stage2 must find it by filesystem UUID on a partition',
      'the root filesystem is on dm-0 (LVM vg0-root), not a plain partition: the install disk cannot be told safely; this layout is not supported',
      'the work dir /var/tmp/balena-migrate is on dm-0 (LVM vg0-root), which stage2 cannot open (no LVM, RAID or encryption there); choose a directory on a plain partition',
    ]);
  });

  it('refuses the Raspberry Pi: not x86_64, no BIOS/UEFI, no GRUB', () => {
    expect(reasons(input('raspberry-pi-4-bookworm'))).toEqual([
      'the GRUB planner handles x86_64 hosts only; this host is aarch64',
      'the firmware is device-tree based (no BIOS or UEFI): GRUB is not how this host boots',
      'GRUB tools are missing: neither update-grub nor grub-mkconfig (or grub2-*) was found',
      'grub-reboot (or grub2-reboot) is missing: the one-shot boot into stage2 needs it',
      'no GRUB directory (/boot/grub or /boot/grub2): is this host really booted by GRUB?',
      '/etc/grub.d does not exist: the stage2 menu entry cannot be added',
    ]);
  });

  const cases: [string, string, (i: PlanInput) => void, RegExp][] = [
    [
      'Secure Boot is on',
      'ubuntu-nuc-uefi-separate-boot',
      (i) => {
        i.facts.firmware.secureBoot = true;
      },
      /^Secure Boot is enabled: .*disable Secure Boot in the firmware setup/,
    ],
    [
      'grub.cfg ignores next_entry',
      'debian-bookworm-bios-virtio',
      (i) => {
        i.facts.grub.honoursNextEntry = false;
      },
      /^\/boot\/grub\/grub\.cfg has no next_entry handling, so grub-reboot would be ignored/,
    ],
    [
      'grubenv sits on btrfs',
      'debian-bookworm-bios-virtio',
      (i) => {
        i.facts.grub.envWritableAtBoot = false;
        i.facts.grub.envNotWritableReason = '/boot/grub is on btrfs, where GRUB cannot write grubenv';
      },
      /^GRUB cannot rewrite its environment block at boot \(\/boot\/grub is on btrfs.*again and again$/,
    ],
    [
      'the running kernel has no installed image',
      'debian-bookworm-bios-virtio',
      (i) => {
        i.facts.kernel.image = null;
      },
      /^the running kernel 6\.1\.0-18-amd64 has no image at \/boot\/vmlinuz-6\.1\.0-18-amd64/,
    ],
    [
      'the running kernel has no modules dir',
      'debian-bookworm-bios-virtio',
      (i) => {
        i.facts.kernel.modulesDir = null;
      },
      /^\/lib\/modules\/6\.1\.0-18-amd64 is missing: the stage2 initramfs needs/,
    ],
    [
      '/boot is nearly full',
      'ubuntu-nuc-uefi-separate-boot',
      (i) => {
        i.facts.bootDir.freeBytes = 12 * MiB;
      },
      /^\/boot has 12\.0 MiB free, but the stage2 kernel and initramfs need 19\.1 MiB with margin; remove old kernels/,
    ],
    [
      'the image does not fit in RAM',
      'debian-bookworm-bios-virtio',
      (i) => {
        i.image.fileSizeBytes = 1536 * MiB;
        i.image.compression = 'none';
      },
      /^stage2 holds the image in RAM: it needs 1\.8 GiB .*only 1\.6 GiB is available/,
    ],
    [
      'the install disk is smaller than the image',
      'debian-bookworm-bios-virtio',
      (i) => {
        i.image.rawSizeBytes = 32 * GiB;
      },
      /^the install disk vda \(20\.0 GiB\) is smaller than the image \(32\.0 GiB raw\)$/,
    ],
    [
      'the work dir is on tmpfs',
      'debian-bookworm-bios-virtio',
      (i) => {
        Object.assign(i.facts.workDir, { fstype: 'tmpfs', device: null, mountpoint: '/tmp' });
        i.workDir = i.facts.workDir.path;
      },
      /^the work dir \/var\/tmp\/balena-migrate is on tmpfs \(RAM, mounted at \/tmp\): it is empty after the reboot/,
    ],
    [
      'the work dir is on NFS',
      'debian-bookworm-bios-virtio',
      (i) => {
        Object.assign(i.facts.workDir, { fstype: 'nfs4', device: null, mountpoint: '/var/tmp' });
      },
      /^the work dir .* is on the network filesystem nfs4 \(\/var\/tmp\): stage2 has no network/,
    ],
    [
      'the work dir is on an overlay',
      'debian-bookworm-bios-virtio',
      (i) => {
        Object.assign(i.facts.workDir, { fstype: 'overlay', device: null });
      },
      /^the work dir .* is on overlay \(\/\), which stage2 cannot open/,
    ],
    [
      'the work dir is on xfs',
      'debian-bookworm-bios-virtio',
      (i) => {
        i.facts.workDir.fstype = 'xfs';
      },
      /^the work dir .* is on xfs, which stage2 cannot mount \(it reads ext2, ext3, ext4, vfat\)/,
    ],
    [
      'the work dir filesystem is too full for the payload',
      'ubuntu-nuc-uefi-separate-boot',
      (i) => {
        i.facts.workDir.freeBytes = 100 * MiB;
      },
      /^the work dir \/var\/tmp\/balena-migrate has 100\.0 MiB free, but the payload needs 266\.0 MiB with margin/,
    ],
    [
      'the shared root filesystem cannot hold payload and boot files together',
      'debian-bookworm-bios-virtio',
      (i) => {
        i.facts.workDir.freeBytes = 270 * MiB;
      },
      /^\/ \(vda1\) has 270\.0 MiB free, but the payload \(266\.0 MiB with margin\) and the boot files \(15\.6 MiB with margin\) need 281\.6 MiB/,
    ],
    [
      'the root filesystem fills a whole unpartitioned disk',
      'debian-bookworm-bios-virtio',
      (i) => {
        i.facts.rootDevice = 'vda';
      },
      /^the root filesystem is on the whole disk vda \(no partition table\), not a plain partition/,
    ],
    [
      'setsid is missing',
      'debian-bookworm-bios-virtio',
      (i) => {
        i.facts.tools.setsid = false;
      },
      /^setsid is missing \(util-linux\)/,
    ],
    [
      'the work dir path has a space in it',
      'debian-bookworm-bios-virtio',
      (i) => {
        i.workDir = '/var/tmp/balena migrate';
        i.facts.workDir.path = i.workDir;
      },
      /^the work dir path \/var\/tmp\/balena migrate \(inside its filesystem\) has characters stage2 cannot use/,
    ],
    [
      'the facts were probed for another work dir',
      'debian-bookworm-bios-virtio',
      (i) => {
        i.workDir = '/srv/migrate';
      },
      /^the facts were probed for the work dir \/var\/tmp\/balena-migrate, not \/srv\/migrate: probe again$/,
    ],
    [
      'the host already runs balenaOS',
      'debian-bookworm-bios-virtio',
      (i) => {
        i.facts.os.isBalenaOS = true;
      },
      /^the host already runs balenaOS/,
    ],
  ];
  for (const [what, host, edit, message] of cases) {
    it(`refuses when ${what}`, () => {
      const got = reasons(input(host, edit));
      expect(
        got.some((r) => message.test(r)),
        got.join('\n'),
      ).toBe(true);
    });
  }

  it('collects several independent reasons instead of stopping at the first', () => {
    const got = reasons(
      input('debian-bookworm-bios-virtio', (i) => {
        i.facts.firmware.secureBoot = true;
        i.facts.grub.honoursNextEntry = false;
        i.facts.kernel.modulesDir = null;
        i.image.rawSizeBytes = 64 * GiB;
        i.facts.workDir.fstype = 'tmpfs';
      }),
    );
    expect(got).toHaveLength(5);
  });
});

describe('planGrubBoot output against the real GRUB tools on this machine', () => {
  const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

  it('writes a grub.d script whose output grub-script-check accepts', (ctx) => {
    if (!has('grub-script-check')) ctx.skip();
    for (const host of ['debian-bookworm-bios-virtio', 'ubuntu-nuc-uefi-separate-boot']) {
      const dir = mkdtempSync(join(tmpdir(), 'grubd-'));
      const script = join(dir, '42_balena-migrate');
      writeFileSync(script, grubScript(plan(input(host))), { mode: 0o755 });
      const out = execFileSync('sh', [script], { encoding: 'utf8' });
      expect(
        out.startsWith("menuentry 'balena-migrate stage2' --id balena-migrate-stage2 --unrestricted {\n"),
      ).toBe(true);
      writeFileSync(join(dir, 'grub.cfg'), out);
      expect(spawnSync('grub-script-check', [join(dir, 'grub.cfg')]).status).toBe(0);
      rmSync(dir, { recursive: true });
    }
  });

  it('checks grub.cfg and grubenv with commands that match what grub-mkconfig and grub-editenv write', (ctx) => {
    if (!has('grub-editenv')) ctx.skip();
    const dir = mkdtempSync(join(tmpdir(), 'grubenv-'));
    const p = plan(input('debian-bookworm-bios-virtio'));
    const env = join(dir, 'grubenv');
    execFileSync('grub-editenv', [env, 'create']);
    execFileSync('grub-editenv', [env, 'set', 'next_entry=balena-migrate-stage2']);
    const envCheck = p.steps.at(-1)!;
    if (envCheck.kind !== 'exec') throw new Error('the last step is not the grubenv check');
    const argv = [...envCheck.argv.slice(0, -1), env];
    expect(spawnSync(argv[0]!, argv.slice(1)).status).toBe(0);
    execFileSync('grub-editenv', [env, 'unset', 'next_entry']);
    expect(spawnSync(argv[0]!, argv.slice(1)).status).toBe(1);

    const cfg = join(dir, 'grub.cfg');
    writeFileSync(cfg, execFileSync('sh', ['-c', grubScript(p)], { encoding: 'utf8' }));
    const cfgCheck = p.steps[6]!;
    if (cfgCheck.kind !== 'exec') throw new Error('step 7 is not the grub.cfg check');
    const cfgArgv = [...cfgCheck.argv.slice(0, -1), cfg];
    expect(spawnSync(cfgArgv[0]!, cfgArgv.slice(1)).status).toBe(0);
    rmSync(dir, { recursive: true });
  });
});

describe('stage2Consoles', () => {
  it("boots stage2 on the consoles the host's own kernel uses", () => {
    expect(
      stage2Consoles('BOOT_IMAGE=/vmlinuz root=UUID=x ro console=tty0 console=ttyS0,115200n8 quiet'),
    ).toEqual(['console=tty0', 'console=ttyS0,115200n8']);
  });

  it('falls back to the screen when the host names no console', () => {
    expect(stage2Consoles('BOOT_IMAGE=/vmlinuz root=UUID=x ro quiet')).toEqual(['console=tty0']);
  });

  it('drops console arguments with characters that do not belong on a kernel command line', () => {
    expect(stage2Consoles('console=ttyS0;reboot console=tty0 console=$(x)')).toEqual(['console=tty0']);
  });
});

describe('stage2KernelArgs', () => {
  it("keeps the host's no_timer_check beside its consoles: the same kernel needs it on the same machine", () => {
    expect(stage2KernelArgs('root=UUID=x ro console=ttyS0,115200 no_timer_check quiet')).toEqual([
      'console=ttyS0,115200',
      'no_timer_check',
    ]);
    expect(stage2KernelArgs('root=UUID=x ro quiet no_timer_check=1')).toEqual(['console=tty0']);
  });

  it('puts it on the stage2 menu entry of a host that boots with it', () => {
    const p = plan(
      input('debian-bookworm-bios-virtio', (i) => {
        i.facts.kernel.cmdline = 'BOOT_IMAGE=/vmlinuz root=UUID=x ro console=ttyS0 no_timer_check';
      }),
    );
    expect(grubScript(p)).toContain(' console=ttyS0 no_timer_check panic=10\n');
  });
});
