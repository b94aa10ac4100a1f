import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PROBE_SCRIPT, probeSysroot } from '../../orchestrator/cli/commands/check-offline.ts';
import { ConfigError } from '../../orchestrator/errors.ts';
import { parseFacts } from '../../orchestrator/facts/parse.ts';
import { expectGolden, goldenJson } from '../fixtures/golden-plans.ts';
import { plan, SYSROOTS, sysrootInput, WORK_DIR } from '../fixtures/sysroot-plans.ts';

// probe.sh with BM_SYSROOT reads a directory tree as if it were a host: the file facts from
// the tree, what only a kernel knows from the tree's sidecar. The same facts under every
// shell the probe supports, and nothing of the machine running it leaks in.

const FIXTURES = readdirSync(SYSROOTS).filter((n) => !n.includes('.'));
const tmp = mkdtempSync(join(tmpdir(), 'sysroot-probe-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function probeWith(shell: string[], dir: string): string {
  return execFileSync(shell[0]!, [...shell.slice(1), PROBE_SCRIPT, WORK_DIR], {
    env: { ...process.env, BM_SYSROOT: dir },
    encoding: 'utf8',
  });
}

describe('probing a sysroot', () => {
  it.each(FIXTURES)('reads %s to the same facts under dash, bash and busybox ash', (name) => {
    const dir = join(SYSROOTS, name);
    const [dash, bash, ash] = [['dash'], ['bash'], ['busybox', 'ash']].map((s) =>
      parseFacts(probeWith(s, dir)),
    );
    expect(bash).toEqual(dash);
    expect(ash).toEqual(dash);
  });

  it('takes everything from the tree and its sidecar, nothing from the machine it runs on', () => {
    const f = probeSysroot(join(SYSROOTS, 'rpi4-raspios-bookworm'), WORK_DIR);
    expect([f.hostname, f.arch, f.kernel.release, f.idTool]).toEqual([
      'raspberrypi',
      'aarch64',
      '6.6.20+rpt-rpi-v8',
      'sysroot',
    ]);
    expect(f.blockDevices.map((b) => b.name)).toEqual(['mmcblk0', 'mmcblk0p1', 'mmcblk0p2']);
    expect(f.network?.interfaces).toEqual([]);
    expect(f.mounts.map((m) => m.target)).toEqual(['/', '/dev', '/proc', '/sys', '/run', '/boot/firmware']);
  });

  it('reads the Raspberry Pi facts: revision code, bootloader time, boot files with their bytes', () => {
    const f = probeSysroot(join(SYSROOTS, 'rpi4-raspios-bookworm'), WORK_DIR);
    expect(f.hardware).toMatchObject({
      cpuRevision: 'c03114',
      bootloaderTimestamp: 1673458852,
      dtModel: 'Raspberry Pi 4 Model B Rev 1.4',
      dtCompatible: ['raspberrypi,4-model-b', 'brcm,bcm2711'],
    });
    expect(f.boot?.firmwareDir).toMatchObject({
      path: '/boot/firmware',
      device: 'mmcblk0p1',
      fstype: 'vfat',
    });
    const config = f.boot?.files.find((x) => x.path === '/boot/firmware/config.txt');
    expect(Buffer.from(config!.contentBase64!, 'base64')).toEqual(
      readFileSync(join(SYSROOTS, 'rpi4-raspios-bookworm/boot/firmware/config.txt')),
    );
    expect(f.boot?.files.find((x) => x.path === '/boot/firmware/kernel8.img')?.contentBase64).toBeNull();
  });

  it('reads the 32-bit revision code from /proc/cpuinfo and the u-boot facts of a BeagleBone', () => {
    expect(probeSysroot(join(SYSROOTS, 'rpi3bplus-raspios-bullseye'), WORK_DIR).hardware).toMatchObject({
      cpuRevision: 'a020d3',
      cpuHardware: 'BCM2835',
    });
    const bbb = probeSysroot(join(SYSROOTS, 'bbb-debian11-emmc'), WORK_DIR);
    expect(bbb.boot).toMatchObject({
      rawBootloaders: [{ device: 'mmcblk1', offsetBytes: 393216, format: 'uimage' }],
      dtbDir: '/boot/dtbs/5.10.168-ti-r71',
      dtbNames: [
        'am335x-boneblack-uboot-univ.dtb',
        'am335x-boneblack.dtb',
        'am335x-bonegreen.dtb',
        'am335x-pocketbeagle.dtb',
      ],
    });
  });

  it('reads Secure Boot off from the EFI variable of the UEFI NUC', () => {
    expect(probeSysroot(join(SYSROOTS, 'nuc-ubuntu-uefi'), WORK_DIR).firmware).toEqual({
      type: 'uefi',
      secureBoot: false,
    });
    expect(probeSysroot(join(SYSROOTS, 'nuc-ubuntu-bios-separate-boot'), WORK_DIR).firmware).toEqual({
      type: 'bios',
      secureBoot: null,
    });
  });

  it('refuses a tree without a sidecar, saying what it is for', () => {
    const bare = join(tmp, 'bare');
    execFileSync('mkdir', ['-p', join(bare, 'etc')]);
    writeFileSync(join(bare, 'etc/os-release'), 'ID=debian\n');
    expect(() => probeSysroot(bare, WORK_DIR)).toThrow(ConfigError);
    expect(() => probeSysroot(bare, WORK_DIR)).toThrow(/has no \.balena-migrate-sysroot: a sysroot needs it/);
  });
});

describe('golden plans of the x86 sysroots (GRUB)', () => {
  it('plans Ubuntu on a UEFI NUC exactly as the golden file says', () => {
    expectGolden(
      'nuc-ubuntu-uefi.json',
      goldenJson(plan(sysrootInput('nuc-ubuntu-uefi', 'genericx86-64-ext'))),
    );
  });

  it('plans Ubuntu on a BIOS NUC with a separate /boot exactly as the golden file says', () => {
    expectGolden(
      'nuc-ubuntu-bios-separate-boot.json',
      goldenJson(plan(sysrootInput('nuc-ubuntu-bios-separate-boot', 'genericx86-64-ext'))),
    );
  });

  it('accepts an intel-nuc image on a NUC, and plans it as intel-nuc', () => {
    expect(plan(sysrootInput('nuc-ubuntu-uefi', 'intel-nuc')).deviceType).toBe('intel-nuc');
  });
});
