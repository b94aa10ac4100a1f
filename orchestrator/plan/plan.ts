// A Plan is pure data: what to upload, which remote steps to take (each with its undo),
// the one-shot boot, and the stage2 config. `check` prints it; `run` applies it.

/** One file the payload puts into the host's working directory. */
export interface PayloadFile {
  role: 'image' | 'config-json' | 'initramfs' | 'kernel' | 'network';
  /** where the bytes come from on the operator's machine (files are streamed, never held) */
  source: { kind: 'file'; path: string } | { kind: 'bytes'; data: Buffer };
  /** absolute path on the host */
  remotePath: string;
  sizeBytes: number;
  sha256: string;
  /** 0o600 for secrets (config.json, network files) */
  mode: number;
}

/**
 * One step of the apply transaction on the host. Steps are data; a renderer turns them into
 * shell with the one quoting function. Every step has an undo.
 */
export type ApplyStep =
  /** create one directory (its parent must exist); undo removes it only if this step created it */
  | { kind: 'mkdir'; path: string; mode: number; description: string }
  /**
   * copy a file already on the host (e.g. from the working directory); an existing target is
   * backed up; with `sha256` the copy is verified before it replaces the target
   */
  | { kind: 'copy'; from: string; to: string; mode: number; description: string; sha256?: string }
  /** write exact content to a path; an existing target is backed up */
  | { kind: 'write'; path: string; content: string; mode: number; description: string }
  /**
   * run a command; `undo` is the commands that reverse it, run in order; every path in
   * `backup` is saved before the command runs and put back byte-exactly (or removed, if it
   * did not exist) after the undo commands
   */
  | { kind: 'exec'; argv: string[]; undo: string[][]; description: string; backup?: string[] };

export interface Stage2Config {
  /** written as balena-stage2.yml: flat `key: value` lines busybox sh can read */
  [key: string]: string | number | boolean;
}

export interface Plan {
  host: string;
  deviceType: string;
  bootManager: 'grub' | 'efi' | 'rpi' | 'uboot' | 'windows';
  /** kernel name of the disk that balenaOS will be written to */
  installDisk: { name: string; sizeBytes: number };
  workDir: string;
  payload: PayloadFile[];
  steps: ApplyStep[];
  /** the one-shot boot into stage2, e.g. `grub-reboot balena-migrate-stage2` */
  oneShot: { mechanism: string; argv: string[] };
  /** the argument of the reboot into stage2 (`0 tryboot`: the Raspberry Pi firmware's one-shot); none for a plain reboot */
  rebootArgument?: string;
  stage2Config: Stage2Config;
  /** where balena-stage2.yml goes on the host */
  stage2ConfigPath: string;
  ram: { neededBytes: number; availableBytes: number };
  /** human-readable lines for `check` */
  notes: string[];
}

export type PlanResult = { ok: true; plan: Plan } | { ok: false; reasons: string[] };

/** What the operator's image is, measured once on the laptop by streaming it. */
export interface ImageInfo {
  path: string;
  /** detected from content, not the name */
  compression: 'none' | 'gzip' | 'xz' | 'zip';
  /** size and sha256 of the file as it is uploaded */
  fileSizeBytes: number;
  fileSha256: string;
  /** size and sha256 of the raw disk image after decompression */
  rawSizeBytes: number;
  rawSha256: string;
  /** RAM the decompressor needs beyond its input (the xz dictionary); absent when negligible */
  decoderMemoryBytes?: number;
}

/** A file on the operator's machine with its measured size and hash. */
export interface LocalFile {
  path: string;
  sizeBytes: number;
  sha256: string;
}

/** Everything a pure planner needs; gathered by the I/O phases before planning. */
export interface PlanInput {
  hostName: string;
  facts: import('../facts/facts.ts').Facts;
  mode: 'standalone' | 'pretend';
  image: ImageInfo;
  configJson: LocalFile;
  /** absolute working directory on the host */
  workDir: string;
  /** `host`: boot the host's installed kernel; otherwise a supplied migration kernel */
  kernel: { source: 'host' } | { source: 'file'; file: LocalFile };
  /** the stage2 initramfs built for this host's kernel */
  initramfs: { data: Buffer; sha256: string };
  failMode: 'reboot' | 'rescue-shell';
  /** extra RAM stage2 keeps free beyond image + config + log */
  ramMarginBytes: number;
  /** for stable backup names, e.g. 20261126T041500Z */
  timestamp: string;
  /** the NetworkManager keyfiles to carry and the network verdict (orchestrator/network) */
  network?: import('../network/plan-network.ts').NetworkPlan;
  /** stage2 rehearses: every check, no write, back to the old OS (stage2.pretend) */
  stage2Pretend?: boolean;
  /** where stage2 also saves its log: LABEL=, UUID= or PARTUUID= of a filesystem (stage2.logDevice) */
  logDevice?: string | null;
  /** the device type the image is for, read from its boot partition's device-type.json (null: the image has none) */
  imageDeviceType?: string | null;
  /** config.json's `deviceType` */
  configDeviceType?: string | null;
  /** plan even when the image or config.json is for another device type than the host's (allowDeviceTypeMismatch) */
  allowDeviceTypeMismatch?: boolean;
  /** x86 hosts: GRUB's one-shot, a one-shot UEFI boot entry, or auto (GRUB unless it cannot) (stage2.bootManager) */
  bootManager?: 'auto' | 'grub' | 'efi';
}
