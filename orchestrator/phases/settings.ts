// What one host's pipeline needs to know, resolved from the migration config, the
// inventory's per-host overrides and the command-line flags.

export interface JumpHop {
  name: string;
  address: string;
  port: number;
  user: string;
  identityFile?: string | undefined;
}

export interface HostTarget {
  name: string;
  address: string;
  port: number;
  user: string;
  identityFile?: string | null;
  /** hosts to connect through (ProxyJump), first hop first; every hop's key is verified */
  jump?: JumpHop[];
  workDir?: string | null;
  image?: string | null;
  configJson?: string | null;
  /** the inventory's free-form host vars (agent mode reads balenaUuid, balenaDeviceType) */
  vars?: Record<string, unknown>;
}

export interface RunSettings {
  command: 'check' | 'run';
  mode: 'standalone' | 'pretend';
  image: string;
  configJson: string;
  workDir: string;
  /** plan even when the image or config.json is for another device type than the host's (allowDeviceTypeMismatch) */
  allowDeviceTypeMismatch?: boolean;
  /** `host` or the path of a supplied migration kernel */
  kernel: string;
  failMode: 'reboot' | 'rescue-shell';
  ramMarginBytes: number;
  /** stage2 rehearses on the device: every check, no write, back to the old OS (stage2.pretend) */
  stage2Pretend?: boolean;
  /** LABEL=, UUID= or PARTUUID= of a filesystem stage2 also saves its log on (stage2.logDevice) */
  logDevice?: string | null;
  /** x86 hosts: how stage2 is booted once (stage2.bootManager); absent means auto */
  bootManager?: 'auto' | 'grub' | 'efi';
  /** Windows hosts: the opt-in startup.nsh fallback for firmware that ignores BootNext (stage2.windowsFallback) */
  windowsFallback?: 'none' | 'startup-nsh';
  /** network carry-over (balena-migrate.yml `network`); absent: carry everything, require a network */
  network?: {
    wifi: 'all' | 'none' | string[];
    requireNetwork: boolean;
    /** absolute paths of NetworkManager keyfiles the operator supplies */
    extraFiles: string[];
  };
  busyboxPath: string;
  ssh: {
    knownHostsFile: string;
    acceptNewHostKeys: boolean;
    identityFiles: string[];
    useAgent: boolean;
    connectTimeoutSeconds: number;
    keepaliveSeconds: number;
  };
  verify: { timeoutSeconds: number; balenaPort: number; balenaUser: string };
}

/** Events the pipeline reports to whoever runs it (the fleet runner, a test). */
export interface PipelineContext {
  wave: number;
  signal: AbortSignal;
  phase(name: import('../report/host-report.ts').PhaseName): void;
  progress(done: number, total: number, label?: string): void;
  log(message: string): void;
  retry(what: string): void;
}
