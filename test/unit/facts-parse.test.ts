import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ProbeParseError, parseFacts, unescapeProbeValue } from '../../orchestrator/facts/parse.ts';

const FIXTURES = join(import.meta.dirname, '../fixtures/facts');
const fixture = (name: string): string => readFileSync(join(FIXTURES, `${name}.txt`), 'utf8');

/** The smallest probe output that parses; tests change one line of it at a time. */
const MINIMAL = [
  'probe_version\t1',
  'hostname\th1',
  'arch\tx86_64',
  'os_release\tID=debian',
  'kernel_release\t6.1.0-18-amd64',
  'firmware\tbios',
  'mem_total_kb\t1000',
  'mem_available_kb\t500',
  'blockdev\tname=vda\ttype=disk\tparent=\tsize=1024\tpartn=\tpttype=dos\tremovable=0\tro=0',
  'blockdev\tname=vda1\ttype=part\tparent=vda\tsize=512\tpartn=1\tpttype=\tremovable=0\tro=0\tuuid=u-1\tfstype=ext4',
  'mount\tsource=/dev/vda1\ttarget=/\tfstype=ext4\toptions=rw',
  'dir\trole=root\tpath=/\texists=1\tmountpoint=/\tdevice=vda1\tfstype=ext4\tfree_kb=10\twritable=1',
  'dir\trole=boot\tpath=/boot\texists=1\tmountpoint=/\tdevice=vda1\tfstype=ext4\tfree_kb=10\twritable=1',
  'dir\trole=work\tpath=/var/tmp/w\texists=0\tmountpoint=/\tdevice=vda1\tfstype=ext4\tfree_kb=10\twritable=1',
  'end\tok',
];
const withLines = (edit: (lines: string[]) => string[]): string => `${edit([...MINIMAL]).join('\n')}\n`;

function parseError(text: string): ProbeParseError {
  try {
    parseFacts(text);
  } catch (e) {
    if (e instanceof ProbeParseError) return e;
    throw e;
  }
  throw new Error('expected a ProbeParseError');
}

describe('parseFacts on the fixture hosts', () => {
  it('reads the Debian BIOS VM: root and /boot on vda1, virtio drivers, an empty 1024-byte grubenv', () => {
    const f = parseFacts(fixture('debian-bookworm-bios-virtio'));
    expect(f.hostname).toBe('deb12-vm');
    expect(f.os).toEqual({
      id: 'debian',
      versionId: '12',
      prettyName: 'Debian GNU/Linux 12 (bookworm)',
      isBalenaOS: false,
    });
    expect(f.firmware).toEqual({ type: 'bios', secureBoot: null });
    expect(f.rootDevice).toBe('vda1');
    expect(f.bootDir).toMatchObject({ path: '/boot', mountpoint: '/', device: 'vda1', fstype: 'ext4' });
    expect(f.workDir).toMatchObject({ exists: false, probedPath: '/var/tmp', freeBytes: 16734208 * 1024 });
    expect(f.storageModules).toEqual(['virtio_blk', 'virtio_pci']);
    expect(f.kernel.image).toBe('/boot/vmlinuz-6.1.0-18-amd64');
    expect(f.memory).toEqual({ totalBytes: 2014256 * 1024, availableBytes: 1721432 * 1024 });
    expect(f.grub).toMatchObject({
      installed: true,
      updateGrub: '/usr/sbin/update-grub',
      dir: '/boot/grub',
      envWritableAtBoot: true,
      honoursNextEntry: true,
      grubDDir: true,
    });
    const env = Buffer.from(f.grub.envBase64!, 'base64');
    expect(env.length).toBe(1024);
    expect(env.subarray(0, 25).toString()).toBe('# GRUB Environment Block\n');
    expect(f.blockDevices.find((b) => b.name === 'vda')).toMatchObject({ type: 'disk', ptType: 'dos' });
    expect(f.blockDevices.find((b) => b.name === 'vda5')).toMatchObject({ partNumber: 5, fstype: 'swap' });
  });

  it('reads the Ubuntu NUC: UEFI with Secure Boot off, /boot on its own partition, the ESP mounted', () => {
    const f = parseFacts(fixture('ubuntu-nuc-uefi-separate-boot'));
    expect(f.firmware).toEqual({ type: 'uefi', secureBoot: false });
    expect(f.hardware).toMatchObject({ dmiProductName: 'NUC8i5BEH', dmiBoardName: 'NUC8BEB' });
    expect(f.rootDevice).toBe('nvme0n1p3');
    expect(f.bootDir).toMatchObject({ mountpoint: '/boot', device: 'nvme0n1p2' });
    expect(f.mounts.find((m) => m.target === '/boot/efi')?.fstype).toBe('vfat');
    expect(f.storageModules).toEqual(['nvme']);
    expect(f.tools.efibootmgr).toBe(true);
    expect(Buffer.from(f.grub.envBase64!, 'base64').toString()).toContain('saved_entry=gnulinux-advanced-');
  });

  it('reads the LVM host: no plain root device, and GRUB cannot write grubenv, with the reason', () => {
    const f = parseFacts(fixture('debian-boot-on-lvm'));
    expect(f.rootDevice).toBeNull();
    expect(f.rootDir?.device).toBe('dm-0');
    expect(f.blockDevices.find((b) => b.name === 'dm-0')).toMatchObject({
      type: 'other',
      dmName: 'vg0-root',
    });
    expect(f.grub.envWritableAtBoot).toBe(false);
    expect(f.grub.envNotWritableReason).toBe('/boot/grub is on LVM (dm-0), where GRUB cannot write grubenv');
  });

  it('reads the Raspberry Pi: device-tree firmware, model and compatibles, and no GRUB at all', () => {
    const f = parseFacts(fixture('raspberry-pi-4-bookworm'));
    expect(f.arch).toBe('aarch64');
    expect(f.firmware.type).toBe('devicetree');
    expect(f.hardware.dtModel).toBe('Raspberry Pi 4 Model B Rev 1.4');
    expect(f.hardware.dtCompatible).toEqual(['raspberrypi,4-model-b', 'brcm,bcm2711']);
    expect(f.grub).toMatchObject({ installed: false, dir: null, reboot: null, grubDDir: false });
    expect(f.blockDevices.find((b) => b.name === 'mmcblk0p1')?.label).toBe('bootfs');
    expect(f.storageModules).toEqual([]);
  });
});

describe('parseFacts decoding', () => {
  it('decodes the escapes \\\\, \\t, \\n, \\r and kernel octal \\NNN in values and record fields', () => {
    expect(unescapeProbeValue('a\\\\b\\tc\\nd\\re\\040f\\134g')).toBe('a\\b\tc\nd\re f\\g');
    const f = parseFacts(
      withLines((l) => [
        ...l.slice(0, -1),
        'mount\tsource=/dev/sdb1\ttarget=/media/my\\040disk\\011x\tfstype=vfat\toptions=rw',
        l.at(-1)!,
      ]).replace('hostname\th1', 'hostname\tweird\\thost\\nname'),
    );
    expect(f.hostname).toBe('weird\thost\nname');
    expect(f.mounts.at(-1)?.target).toBe('/media/my disk\tx');
  });

  it('unquotes os-release values the way a shell would (after undoing the probe escapes)', () => {
    const f = parseFacts(
      withLines((l) =>
        l.flatMap((x) =>
          x === 'os_release\tID=debian'
            ? [
                'os_release\tID=balena-os',
                `os_release\t${String.raw`PRETTY_NAME="balenaOS \\"2.1\\" \\$x"`}`,
                "os_release\tVERSION_ID='6.0.13'",
              ]
            : [x],
        ),
      ),
    );
    expect(f.os).toEqual({
      id: 'balena-os',
      versionId: '6.0.13',
      prettyName: 'balenaOS "2.1" $x',
      isBalenaOS: true,
    });
  });

  it('falls back to MemFree with a warning when the kernel has no MemAvailable', () => {
    const f = parseFacts(
      withLines((l) => l.map((x) => (x.startsWith('mem_available_kb') ? 'mem_free_kb\t300' : x))),
    );
    expect(f.memory.availableBytes).toBe(300 * 1024);
    expect(f.warnings).toContain('the kernel reports no MemAvailable; MemFree is used instead');
  });

  it('ignores comment lines and blank lines', () => {
    const f = parseFacts(`# a comment\n\n${MINIMAL.join('\n')}\n`);
    expect(f.hostname).toBe('h1');
  });
});

describe('parseFacts errors name the line at fault', () => {
  const cases: [string, (l: string[]) => string[], RegExp, number | null][] = [
    ['an unknown key', (l) => [l[0]!, 'colour\tblue', ...l.slice(1)], /line 2: unknown key "colour"/, 2],
    [
      'a line without a tab',
      (l) => [l[0]!, 'hostname h1', ...l.slice(2)],
      /line 2: expected KEY<TAB>VALUE/,
      2,
    ],
    [
      'a scalar given twice',
      (l) => [...l.slice(0, 3), 'arch\taarch64', ...l.slice(3)],
      /line 4: arch appears twice \(first on line 3\)/,
      4,
    ],
    [
      'a bad escape',
      (l) => l.map((x) => (x.startsWith('hostname') ? 'hostname\ta\\qb' : x)),
      /line 2: .*bad escape/,
      2,
    ],
    [
      'a record field that is not NAME=VALUE',
      (l) => l.map((x) => (x.startsWith('mount') ? `${x}\tjunk` : x)),
      /line 11: record field "junk" is not NAME=VALUE/,
      11,
    ],
    [
      'a record without a required field',
      (l) => l.map((x) => (x.startsWith('dir\trole=boot') ? x.replace('\tfree_kb=10', '') : x)),
      /line 13: dir record lacks the field free_kb/,
      13,
    ],
    [
      'a size that is not a number',
      (l) => l.map((x) => (x.startsWith('blockdev\tname=vda\t') ? x.replace('size=1024', 'size=1k') : x)),
      /line 9: field size is not a whole number: "1k"/,
      9,
    ],
    [
      'a memory size that is not a number',
      (l) => l.map((x) => (x.startsWith('mem_total') ? 'mem_total_kb\tlots' : x)),
      /line 7: mem_total_kb: not a whole number/,
      7,
    ],
    [
      'an unknown firmware type',
      (l) => l.map((x) => (x === 'firmware\tbios' ? 'firmware\tcoreboot' : x)),
      /line 6: firmware: expected bios, uefi or devicetree/,
      6,
    ],
    [
      'a secure_boot flag that is not 0 or 1',
      (l) => [...l.slice(0, -1), 'secure_boot\tyes', l.at(-1)!],
      /line 15: secure_boot: expected 0 or 1/,
      15,
    ],
    ['text after the end line', (l) => [...l, 'hostname\tagain'], /line 16: text after the `end` line/, 16],
    [
      'a second dir record for one role',
      (l) => [...l.slice(0, 12), l[11]!, ...l.slice(12)],
      /line 13: a second dir record for role root/,
      13,
    ],
  ];
  for (const [what, edit, message, line] of cases) {
    it(`rejects ${what}, naming line ${line}`, () => {
      const err = parseError(withLines(edit));
      expect(err.message).toMatch(message);
      expect(err.line).toBe(line);
    });
  }

  it('says the output is truncated when the end line is missing', () => {
    const err = parseError(withLines((l) => l.slice(0, -1)));
    expect(err.message).toMatch(/truncated after 14 lines \(no `end` line\)/);
    expect(err.line).toBeNull();
  });

  it('refuses a probe version it does not understand', () => {
    expect(parseError(withLines((l) => ['probe_version\t2', ...l.slice(1)])).message).toMatch(
      /line 1: probe_version: this orchestrator understands probe version 1, not 2/,
    );
  });

  it('names a missing work dir record', () => {
    expect(parseError(withLines((l) => l.filter((x) => !x.includes('role=work')))).message).toMatch(
      /no dir record for role work/,
    );
  });
});
