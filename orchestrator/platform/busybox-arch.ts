// Whether the static busybox that becomes stage2's userland runs on the host: its ELF machine
// against the host's `uname -m`, and on ARMv6 boards (Raspberry Pi 1 and Zero) the ARM
// architecture it was built for (Debian's armhf build needs ARMv7). A busybox that cannot run
// means no stage2 at all: the kernel panics at /init and, on a board without a one-shot boot
// (config.txt, uEnv.txt), boots into it again and again. Pure: bytes in, a reason or null out.

export interface ElfInfo {
  machine: 'x86_64' | 'i386' | 'aarch64' | 'arm' | 'other';
  bits: 32 | 64;
  /** ARM builds: Tag_CPU_arch of .ARM.attributes (6 = v6, 9 = v6K, 10 = v7, 14 = v8); null when absent */
  armArch: number | null;
}

const MACHINES: Record<number, ElfInfo['machine']> = { 3: 'i386', 40: 'arm', 62: 'x86_64', 183: 'aarch64' };
const SHT_ARM_ATTRIBUTES = 0x70000003;
const TAG_CPU_ARCH = 6;
const ARM_ARCH_NAMES: Record<number, string> = {
  6: 'ARMv6',
  7: 'ARMv6KZ',
  8: 'ARMv6T2',
  9: 'ARMv6K',
  10: 'ARMv7',
  14: 'ARMv8',
};

function uleb(buf: Buffer, at: number): [number, number] {
  let value = 0;
  let shift = 0;
  let i = at;
  while (i < buf.length) {
    const b = buf[i++]!;
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if (!(b & 0x80)) break;
  }
  return [value, i];
}

/** Tag_CPU_arch from an .ARM.attributes section ("aeabi" vendor, File scope). */
function armCpuArch(section: Buffer): number | null {
  if (section[0] !== 0x41) return null; // 'A': format version
  let at = 1;
  while (at + 4 < section.length) {
    const len = section.readUInt32LE(at);
    const end = Math.min(at + len, section.length);
    const nameEnd = section.indexOf(0, at + 4);
    if (len < 5 || nameEnd < 0) return null;
    if (section.toString('latin1', at + 4, nameEnd) === 'aeabi') {
      let p = nameEnd + 1;
      while (p < end) {
        const [scope, q] = uleb(section, p);
        const size = section.readUInt32LE(q);
        const subEnd = Math.min(p + size, end);
        let r = q + 4;
        if (scope === 1) {
          while (r < subEnd) {
            const [tag, s] = uleb(section, r);
            if (tag === 4 || tag === 5 || tag === 67 || (tag > 32 && tag % 2 === 1)) {
              r = section.indexOf(0, s) + 1; // a string value
              if (r === 0) return null;
            } else if (tag === 32) {
              const [, t] = uleb(section, s);
              r = section.indexOf(0, t) + 1;
              if (r === 0) return null;
            } else {
              const [value, t] = uleb(section, s);
              if (tag === TAG_CPU_ARCH) return value;
              r = t;
            }
          }
        }
        p = subEnd;
      }
    }
    at = end;
  }
  return null;
}

/** What an ELF executable is built for; null when it is not ELF. */
export function readElfInfo(bin: Buffer): ElfInfo | null {
  if (bin.length < 52 || bin.readUInt32BE(0) !== 0x7f454c46) return null;
  const bits = bin[4] === 2 ? 64 : 32;
  if (bin[5] !== 1) return { machine: 'other', bits, armArch: null }; // big-endian: not ours
  const machine = MACHINES[bin.readUInt16LE(18)] ?? 'other';
  let armArch: number | null = null;
  if (machine === 'arm' && bits === 32) {
    const shoff = bin.readUInt32LE(0x20);
    const shentsize = bin.readUInt16LE(0x2e);
    const shnum = bin.readUInt16LE(0x30);
    for (let i = 0; i < shnum; i++) {
      const sh = shoff + i * shentsize;
      if (sh + 40 > bin.length) break;
      if (bin.readUInt32LE(sh + 4) !== SHT_ARM_ATTRIBUTES) continue;
      const off = bin.readUInt32LE(sh + 16);
      const size = bin.readUInt32LE(sh + 20);
      armArch = armCpuArch(bin.subarray(off, off + size));
      break;
    }
  }
  return { machine, bits, armArch };
}

/** Why the busybox at PATH cannot run on a host of ARCH, or null when it can (or ARCH is not one we check). */
export function busyboxArchProblem(bin: Buffer, path: string, hostArch: string): string | null {
  const elf = readElfInfo(bin);
  const fix = (debianArch: string) =>
    `pass --busybox (stage2.busybox) with a static busybox for ${hostArch}, e.g. from Debian's busybox-static:${debianArch}`;
  const consequence =
    'stage2 could not start (and a board without a one-shot boot would boot into it again and again)';
  if (!elf) return `the stage2 busybox ${path} is not an ELF executable`;
  const built = `${elf.machine}${elf.machine === 'arm' && elf.armArch !== null ? ` (${ARM_ARCH_NAMES[elf.armArch] ?? `CPU arch ${elf.armArch}`})` : ''}`;
  const wrong = (debianArch: string) =>
    `the stage2 busybox ${path} is built for ${built}, but this host runs ${hostArch}: ${consequence}; ${fix(debianArch)}`;
  switch (hostArch) {
    case 'x86_64':
      return elf.machine === 'x86_64' ? null : wrong('amd64');
    case 'aarch64':
      return elf.machine === 'aarch64' ? null : wrong('arm64');
    case 'armv7l':
      return elf.machine === 'arm' && (elf.armArch === null || elf.armArch <= 10) ? null : wrong('armhf');
    case 'armv6l':
      if (elf.machine !== 'arm') return wrong('armel');
      if (elf.armArch === null) {
        return `the stage2 busybox ${path} does not say which ARM architecture it is built for, and this host is ARMv6: ${consequence}; use a busybox built for ARMv6 (Raspberry Pi OS's or Debian's armel busybox-static)`;
      }
      return elf.armArch <= 9 ? null : `${wrong('armel')} (Debian's armhf build needs ARMv7)`;
    default:
      return null;
  }
}
