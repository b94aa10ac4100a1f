// Builds the stage2 initramfs: busybox, the init script, the kernel modules stage2 needs and
// the list saying in which order to load them. Pure: buffers in, a gzipped newc archive out.

import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { type CpioEntry, normalizeCpioPath, writeCpioGz } from './cpio.ts';

/** Where the init script lives in this repository. */
export const STAGE2_INIT_PATH = new URL('../init', import.meta.url);

/** Applets linked into /bin at build time; the init also runs `busybox --install -s /bin`. */
export const STAGE2_APPLETS: readonly string[] = [
  'sh',
  'awk',
  'base64',
  'blockdev',
  'cat',
  'chmod',
  'cp',
  'dd',
  'findfs',
  'grep',
  'gunzip',
  'hexdump',
  'insmod',
  'losetup',
  'mdev',
  'mkdir',
  'mount',
  'mv',
  'readlink',
  'reboot',
  'rm',
  'sed',
  'setsid',
  'sha256sum',
  'sleep',
  'sort',
  'stat',
  'sync',
  'tr',
  'umount',
  'uname',
  'unxz',
  'unzip',
  'watchdog',
];

/** The name of the module load list inside /lib/modules/RELEASE. */
export const MODULE_LOAD_LIST = 'stage2-modules.load';

export interface InitramfsInput {
  /** a statically linked busybox for the host's architecture */
  busybox: Buffer;
  /** module files in load order (dependencies first), paths relative to /lib/modules/RELEASE */
  modules: { relPath: string; data: Buffer }[];
  /** `uname -r` of the kernel the modules belong to */
  kernelRelease: string;
  /** the init script; defaults to stage2/init from this repository */
  init?: Buffer;
}

/** Reads stage2/init from this repository. */
export function readStage2Init(): Buffer {
  return readFileSync(STAGE2_INIT_PATH);
}

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

// Busybox's insmod takes plain ELF; .gz is unpacked here, .xz by `unxz` in the init. zstd has
// neither a Node 20 decoder nor a busybox applet, so such a module must come decompressed.
function moduleForArchive(relPath: string, data: Buffer): { relPath: string; data: Buffer } {
  const base = relPath.replace(/\.ko(\.(gz|xz|zst))?$/, '');
  if (base === relPath) throw new Error(`module "${relPath}" does not end in .ko, .ko.gz, .ko.xz or .ko.zst`);
  if (data.subarray(0, 4).equals(ELF_MAGIC)) return { relPath: `${base}.ko`, data };
  if (data.subarray(0, 2).equals(GZIP_MAGIC)) {
    const plain = gunzipSync(data);
    if (!plain.subarray(0, 4).equals(ELF_MAGIC))
      throw new Error(`module "${relPath}" does not gunzip to an ELF file`);
    return { relPath: `${base}.ko`, data: plain };
  }
  if (data.subarray(0, 6).equals(XZ_MAGIC)) return { relPath: `${base}.ko.xz`, data };
  if (data.subarray(0, 4).equals(ZSTD_MAGIC)) {
    throw new Error(
      `module "${relPath}" is zstd-compressed: decompress it first (e.g. \`zstd -d\`), stage2 cannot`,
    );
  }
  throw new Error(`module "${relPath}" is neither an ELF file nor gzip/xz data`);
}

function checkBusybox(busybox: Buffer): void {
  if (!busybox.subarray(0, 4).equals(ELF_MAGIC)) throw new Error('busybox: not an ELF executable');
  // A dynamically linked binary has a PT_INTERP program header; the initramfs has no libc.
  const is64 = busybox[4] === 2;
  const le = busybox[5] === 1;
  const u16 = (o: number) => (le ? busybox.readUInt16LE(o) : busybox.readUInt16BE(o));
  const u32 = (o: number) => (le ? busybox.readUInt32LE(o) : busybox.readUInt32BE(o));
  const phoff = is64 ? Number(le ? busybox.readBigUInt64LE(32) : busybox.readBigUInt64BE(32)) : u32(28);
  const phentsize = u16(is64 ? 54 : 42);
  const phnum = u16(is64 ? 56 : 44);
  for (let i = 0; i < phnum; i++) {
    if (u32(phoff + i * phentsize) === 3) {
      throw new Error(
        'busybox: dynamically linked (it has an ELF interpreter); use a static build such as busybox-static',
      );
    }
  }
}

/** The gzipped newc archive the kernel unpacks as the stage2 root filesystem. */
export function buildInitramfs(input: InitramfsInput): Buffer {
  const release = input.kernelRelease;
  if (!/^[A-Za-z0-9._+-]+$/.test(release)) throw new Error(`kernel release "${release}" is not a valid name`);
  checkBusybox(input.busybox);
  const init = input.init ?? readStage2Init();

  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'etc', 'lib', 'mnt', 'proc', 'root', 'run', 'sbin', 'sys', 'tmp'].map(
      (d): CpioEntry => ({ type: 'dir', path: d, mode: d === 'tmp' ? 0o1777 : 0o755 }),
    ),
    { type: 'char', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
    { type: 'char', path: 'dev/null', major: 1, minor: 3, mode: 0o666 },
    { type: 'file', path: 'init', data: init, mode: 0o755 },
    { type: 'file', path: 'bin/busybox', data: input.busybox, mode: 0o755 },
    ...STAGE2_APPLETS.map((a): CpioEntry => ({ type: 'symlink', path: `bin/${a}`, target: 'busybox' })),
    { type: 'file', path: 'etc/stage2-kernel-release', data: `${release}\n`, mode: 0o644 },
  ];

  const loadList: string[] = [];
  const seen = new Set<string>();
  for (const mod of input.modules) {
    const rel = normalizeCpioPath(mod.relPath);
    const stored = moduleForArchive(rel, mod.data);
    if (seen.has(stored.relPath)) throw new Error(`module "${rel}" is listed twice`);
    seen.add(stored.relPath);
    loadList.push(stored.relPath);
    entries.push({
      type: 'file',
      path: `lib/modules/${release}/${stored.relPath}`,
      data: stored.data,
      mode: 0o644,
    });
  }
  entries.push({
    type: 'file',
    path: `lib/modules/${release}/${MODULE_LOAD_LIST}`,
    data: loadList.map((l) => `${l}\n`).join(''),
    mode: 0o644,
  });
  return writeCpioGz(entries);
}
