// The Windows pipeline (phases/windows-host.ts) end to end, against a replay of a Windows host:
// every command it sends is decoded from its -EncodedCommand (or stdin) and answered with the
// output Windows PowerShell 5.1 prints for it (the probe: the recorded outputs in
// test/fixtures/windows; the rest in the form the commands print). What this proves: the order
// of the steps, what is sent, and every decision (refuse before any change, undo after a
// failed apply and after a reverted stage2). What it cannot prove: that Windows runs the
// scripts as written — no Windows host is available here.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnreachableError } from '../../orchestrator/errors.ts';
import { HostRecorder } from '../../orchestrator/phases/recorder.ts';
import { RunResources } from '../../orchestrator/phases/resources.ts';
import type { HostJob } from '../../orchestrator/phases/run-host.ts';
import type { PipelineContext, RunSettings } from '../../orchestrator/phases/settings.ts';
import {
  runWindowsHost,
  type WindowsConnections,
  type WindowsSession,
} from '../../orchestrator/phases/windows-host.ts';
import { windowsUploadVerifier } from '../../orchestrator/platform/windows/upload-verifier.ts';
import type { HostReport } from '../../orchestrator/report/host-report.ts';
import type { ExecOptions, ExecResult, SshSession } from '../../orchestrator/ssh/session.ts';
import type { UploadOptions, UploadSource } from '../../orchestrator/ssh/upload.ts';
import { deviceTypeJson, makeBootImage } from '../fixtures/balena-boot-image.ts';
import { GOOD_KERNEL_CONFIG } from '../fixtures/windows/plan-input.ts';
import { scriptOf } from '../fixtures/windows/ps-command.ts';

const FIXTURES = join(import.meta.dirname, '../fixtures/windows');
const MiB = 1024 * 1024;

let dir: string;
let base: RunSettings;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bm-windows-pipeline-'));
  const image = makeBootImage(dir, 'balena.img', { deviceTypeJson: deviceTypeJson('genericx86-64-ext') });
  await writeFile(
    join(dir, 'config.json'),
    JSON.stringify({ deviceType: 'genericx86-64-ext', apiKey: 'sekrit' }),
  );
  await writeFile(join(dir, 'bzImage'), Buffer.alloc(2 * MiB, 7));
  await writeFile(join(dir, 'bzImage.config'), GOOD_KERNEL_CONFIG);
  base = {
    command: 'run',
    mode: 'standalone',
    image: image.path,
    configJson: join(dir, 'config.json'),
    workDir: '/var/tmp/balena-migrate',
    kernel: join(dir, 'bzImage'),
    failMode: 'reboot',
    ramMarginBytes: 64 * MiB,
    busyboxPath: '/bin/busybox',
    ssh: {
      knownHostsFile: join(dir, 'known_hosts'),
      acceptNewHostKeys: false,
      identityFiles: [],
      useAgent: false,
      connectTimeoutSeconds: 5,
      keepaliveSeconds: 10,
    },
    verify: { timeoutSeconds: 5, balenaPort: 22222, balenaUser: 'root' },
  };
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

type Step =
  | 'probe'
  | 'prepare-work-dir'
  | 'apply-state'
  | 'start-apply'
  | 'undo'
  | 'boot-id'
  | 'restart'
  | 'read-stage2-log';

/** Which of the pipeline's commands a script is. An unknown script fails the test. */
function classify(script: string): Step {
  if (script.includes('ProbeVersion')) return 'probe';
  if (script.includes('icacls.exe')) return 'prepare-work-dir';
  if (script.includes("'apply.state'")) return 'apply-state';
  if (/^& '.*\\apply\.ps1'\nexit \$LASTEXITCODE/.test(script)) return 'start-apply';
  if (script.includes('nothing to undo: no undo.ps1')) return 'undo';
  if (script.includes('LastBootUpTime')) return 'boot-id';
  if (script.includes('shutdown.exe /r')) return 'restart';
  if (script.includes('ReadAllBytes')) return 'read-stage2-log';
  throw new Error(`the pipeline sent a command the replay does not know:\n${script.slice(0, 400)}`);
}

interface Answer {
  exitCode?: number;
  stdout?: string;
  stderr?: string;
}

/** One Windows PC as its PowerShell answers; the pipeline's sessions all talk to it. */
class ReplayedWindowsHost {
  readonly sent: string[] = [];
  readonly uploads: Array<{ path: string; sha256: string; windowsVerifier: boolean }> = [];
  planHash = '';
  bootTicks = '638679859123456789';
  /** apply-state answers after apply.ps1 started, in order (the last one repeats) */
  statesAfterStart: Array<(hash: string) => string> = [
    (h) => `running\r\nplan ${h}\r\nstarting\r\n`,
    (h) => `committed\r\nplan ${h}\r\nall 6 steps done\r\n`,
  ];
  started = false;
  stateReads = 0;
  /** the link drops at the first state read after the start (the scheduled task goes on) */
  dropAfterStart = false;
  connects = 0;
  comesBackAs: 'windows' | 'balena' = 'windows';
  stage2Log: string | null = 'stage2: the install disk is smaller than expected; nothing written\n';
  undoAnswer: Answer = { stdout: 'undone\r\n' };

  constructor(public probeJson: string) {}

  session(): WindowsSession {
    const host = this;
    return {
      target: 'admin@192.0.2.20:22',
      shell: 'powershell',
      async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
        const step = classify(
          scriptOf({ command, ...(opts.stdin === undefined ? {} : { stdin: opts.stdin }) }),
        );
        host.sent.push(step);
        if (step === 'apply-state' && host.started && host.dropAfterStart) {
          host.dropAfterStart = false;
          throw new UnreachableError('the connection to admin@192.0.2.20:22 dropped');
        }
        const a = host.answer(step);
        return {
          exitCode: a.exitCode ?? 0,
          signal: null,
          stdout: a.stdout ?? '',
          stderr: a.stderr ?? '',
          durationMs: 1,
          timedOut: false,
        };
      },
      async upload(source: UploadSource, path: string, opts: UploadOptions) {
        host.uploads.push({
          path,
          sha256: opts.sha256,
          windowsVerifier: opts.verifier === windowsUploadVerifier,
        });
        if ('data' in source) {
          const m = /\$Plan = '([0-9a-f]{64})'/.exec(source.data.toString('utf8'));
          if (m) host.planHash = m[1]!;
        }
        return { bytesSent: opts.sizeBytes, resumedFrom: 0, skipped: false };
      },
      close: async () => {},
    };
  }

  private answer(step: Step): Answer {
    switch (step) {
      case 'probe':
        return { stdout: this.probeJson };
      case 'prepare-work-dir':
        return { stdout: 'ok\r\n' };
      case 'apply-state': {
        if (!this.started) return { stdout: 'absent\r\n' };
        const next = this.statesAfterStart[Math.min(this.stateReads++, this.statesAfterStart.length - 1)]!;
        return { stdout: next(this.planHash) };
      }
      case 'start-apply':
        this.started = true;
        return { stdout: 'started\r\n' };
      case 'undo':
        return this.undoAnswer;
      case 'boot-id':
        return { stdout: `boot ${this.bootTicks}\r\n` };
      case 'restart':
        // the PC restarts: the next boot has another boot time
        this.bootTicks = '638679862000000000';
        return { stdout: 'restarting\r\n' };
      case 'read-stage2-log':
        return this.stage2Log === null
          ? { stdout: 'none\r\n' }
          : {
              stdout: `log C:\\balena-migrate\\stage2.log\r\nbase64 ${Buffer.from(this.stage2Log).toString('base64')}\r\n`,
            };
    }
  }

  connections(): WindowsConnections {
    return {
      old: async () => {
        this.connects++;
        if (this.comesBackAs === 'balena' && this.bootTicks !== '638679859123456789')
          throw new UnreachableError('connect ECONNREFUSED 192.0.2.20:22');
        return this.session();
      },
      balena: async () => {
        if (this.comesBackAs !== 'balena')
          throw new UnreachableError('connect ECONNREFUSED 192.0.2.20:22222');
        const balena = {
          exec: async (cmd: string) => ({
            exitCode: 0,
            stdout: cmd.includes('os-release')
              ? 'ID=balena-os\nVERSION_ID=6.0.10\n'
              : 'stage2: image written\n',
            stderr: '',
          }),
          close: async () => {},
        };
        return balena as unknown as SshSession;
      },
    };
  }
}

async function probeJson(
  name: string,
  edit: (raw: Record<string, unknown>) => void = () => {},
): Promise<string> {
  const raw = JSON.parse(await readFile(join(FIXTURES, `${name}.json`), 'utf8')) as Record<string, unknown>;
  edit(raw);
  return `${JSON.stringify(raw)}\r\n`;
}

async function runOn(host: ReplayedWindowsHost, edit: Partial<RunSettings> = {}): Promise<HostReport> {
  const ctx: PipelineContext = {
    wave: 1,
    signal: new AbortController().signal,
    phase: () => {},
    progress: () => {},
    log: () => {},
    retry: () => {},
  };
  const settings = { ...base, ...edit };
  const job: HostJob = {
    target: { name: 'win11', address: '192.0.2.20', port: 22, user: 'admin' },
    settings,
    resources: new RunResources(),
    prompts: {},
    ctx,
  };
  const rec = new HostRecorder(
    { host: 'win11', address: '192.0.2.20', port: 22, wave: 1, command: settings.command },
    ctx,
  );
  return runWindowsHost(job, rec, host.session(), host.connections(), {
    apply: { pollMs: 1 },
    verifyPollMs: 1,
  });
}

const phases = (r: HostReport) => r.phases.map((p) => `${p.name}${p.ok ? '' : ' FAILED'}`);

describe('check on a Windows host', () => {
  it('probes, plans and changes nothing: only the read-only probe is sent', async () => {
    const host = new ReplayedWindowsHost(await probeJson('win11-uefi-clean'));
    const r = await runOn(host, { command: 'check' });
    expect(r.outcome).toBe('ready');
    expect(host.sent).toEqual(['probe']);
    expect(host.uploads).toEqual([]);
    expect(r.bootManager).toBe('windows');
    expect(r.deviceType).toBe('genericx86-64-ext');
    expect(r.windowsFacts?.hostname).toBe('KIOSK-0042');
    expect(r.facts).toBeNull();
    expect(JSON.stringify(r.plan)).toContain('\\\\EFI\\\\balena-migrate\\\\vmlinuz.efi');
  });

  it("plans to move Windows' boot files aside (startup.nsh) only when stage2.windowsFallback asks for it", async () => {
    const plain = await runOn(new ReplayedWindowsHost(await probeJson('win11-uefi-clean')), {
      command: 'check',
    });
    expect(JSON.stringify(plain.plan)).not.toContain('startup.nsh');
    expect(JSON.stringify(plain.plan)).not.toContain('efi_backup');
    const fallback = await runOn(new ReplayedWindowsHost(await probeJson('win11-uefi-clean')), {
      command: 'check',
      windowsFallback: 'startup-nsh',
    });
    expect(fallback.outcome).toBe('ready');
    expect(JSON.stringify(fallback.plan)).toContain('startup.nsh');
    expect(JSON.stringify(fallback.plan)).toContain('efi_backup');
  });

  it('refuses a login that is not elevated, saying how to log in as an administrator', async () => {
    const host = new ReplayedWindowsHost(
      await probeJson('win11-uefi-clean', (raw) => (raw.IsAdministrator = false)),
    );
    const r = await runOn(host, { command: 'check' });
    expect(r.outcome).toBe('refused');
    expect(r.refusalReasons).toHaveLength(1);
    expect(r.refusalReasons[0]).toMatch(/the SSH user admin is not an administrator on KIOSK-0042/);
    expect(r.refusalReasons[0]).toMatch(/administrators_authorized_keys/);
    expect(phases(r)).toEqual(['probe']);
    expect(host.sent).toEqual(['probe']);
  });

  it('refuses Secure Boot and BitLocker with their reasons, before anything is uploaded', async () => {
    const host = new ReplayedWindowsHost(await probeJson('win11-secure-boot-bitlocker'));
    const r = await runOn(host);
    expect(r.outcome).toBe('refused');
    expect(r.refusalReasons.join('\n')).toMatch(/Secure Boot is enabled/);
    expect(r.refusalReasons.join('\n')).toMatch(/BitLocker is on for C:/);
    expect(host.sent).toEqual(['probe']);
    expect(host.uploads).toEqual([]);
  });

  it('refuses stage2.kernel "host": Windows has no Linux kernel to boot', async () => {
    const host = new ReplayedWindowsHost(await probeJson('win11-uefi-clean'));
    const r = await runOn(host, { kernel: 'host' });
    expect(r.outcome).toBe('refused');
    expect(r.refusalReasons.join('\n')).toMatch(/a Windows host has no Linux kernel to boot/);
    expect(host.sent).toEqual(['probe']);
  });
});

describe('run on a Windows host', () => {
  it('uploads with Get-FileHash checks, applies, restarts, and on a reverted stage2 reads its log and runs undo.ps1', async () => {
    const host = new ReplayedWindowsHost(await probeJson('win11-uefi-clean'));
    const r = await runOn(host);
    expect(r.outcome).toBe('reverted');
    expect(host.sent).toEqual([
      'probe',
      'prepare-work-dir',
      'apply-state',
      'start-apply',
      'apply-state',
      'apply-state',
      'boot-id',
      'restart',
      'boot-id',
      'read-stage2-log',
      'undo',
    ]);
    expect(host.uploads.map((u) => u.path)).toEqual([
      'C:/balena-migrate/balena-image.img',
      'C:/balena-migrate/config.json',
      'C:/balena-migrate/stage2-initramfs.gz',
      'C:/balena-migrate/vmlinuz.efi',
      'C:/balena-migrate/apply.ps1',
      'C:/balena-migrate/undo.ps1',
    ]);
    expect(host.uploads.every((u) => u.windowsVerifier)).toBe(true);
    expect(r.stage2Log).toContain('the install disk is smaller than expected');
    expect(phases(r)).toEqual(['probe', 'plan', 'upload', 'apply', 'reboot', 'verify', 'undo']);
    expect(r.error?.nextStep).toMatch(/read the stage2 log/);
    // config.json's API key travels as a file; it is in no report
    expect(JSON.stringify(r)).not.toContain('sekrit');
  });

  it('says so when Windows came back without a stage2 log (BootNext ignored?), and still undoes', async () => {
    const host = new ReplayedWindowsHost(await probeJson('win11-uefi-clean'));
    host.stage2Log = null;
    const r = await runOn(host);
    expect(r.outcome).toBe('reverted');
    expect(r.error?.message).toMatch(/stage2 left no log: the firmware may have ignored BootNext/);
    expect(host.sent.at(-1)).toBe('undo');
  });

  it('ends migrated when balenaOS answers after the restart, without any undo', async () => {
    const host = new ReplayedWindowsHost(await probeJson('win11-uefi-clean'));
    host.comesBackAs = 'balena';
    const r = await runOn(host);
    expect(r.outcome).toBe('migrated');
    expect(r.stage2Log).toBe('stage2: image written\n');
    expect(host.sent).not.toContain('undo');
  });

  it('undoes the boot setup when apply.ps1 rolled back, and never restarts', async () => {
    const host = new ReplayedWindowsHost(await probeJson('win11-uefi-clean'));
    host.statesAfterStart = [
      (h) => `rolled-back\r\nplan ${h}\r\nstep 5 failed: SetFirmwareEnvironmentVariableEx: access denied\r\n`,
    ];
    const r = await runOn(host);
    expect(r.outcome).toBe('failed');
    expect(r.error?.message).toMatch(/apply failed and was rolled back: step 5 failed/);
    expect(host.sent).not.toContain('restart');
    expect(host.sent.at(-1)).toBe('undo');
    expect(phases(r)).toEqual(['probe', 'plan', 'upload', 'apply FAILED', 'undo']);
  });

  it('needs a human, naming undo.ps1, when the undo after a failed apply fails too', async () => {
    const host = new ReplayedWindowsHost(await probeJson('win11-uefi-clean'));
    host.statesAfterStart = [(h) => `interrupted\r\nplan ${h}\r\nthe process that was running is gone\r\n`];
    host.undoAnswer = { exitCode: 1, stderr: 'undo failed: Boot0004 could not be deleted\r\n' };
    const r = await runOn(host);
    expect(r.outcome).toBe('needs-attention');
    expect(r.error?.message).toMatch(
      /and the undo failed: undo\.ps1 on admin@192\.0\.2\.20:22 exited with 1/,
    );
    expect(r.error?.nextStep).toContain(
      "run 'C:\\balena-migrate\\undo.ps1' on the host in an elevated PowerShell",
    );
  });

  it('ends ready after a stage2 rehearsal (stage2.pretend) that passed every check, undo run', async () => {
    const host = new ReplayedWindowsHost(await probeJson('win11-uefi-clean'));
    host.stage2Log = 'stage2: pretend: every check passed; nothing written\n';
    const r = await runOn(host, { stage2Pretend: true });
    expect((r.plan as { stage2Config: { mode: string } }).stage2Config.mode).toBe('pretend');
    expect(r.outcome).toBe('ready');
    expect(host.sent.at(-1)).toBe('undo');
  });

  it('reconnects when the link drops while apply.ps1 runs, and reads how the transaction ended', async () => {
    const host = new ReplayedWindowsHost(await probeJson('win11-uefi-clean'));
    host.dropAfterStart = true;
    host.comesBackAs = 'balena';
    const r = await runOn(host);
    expect(r.outcome).toBe('migrated');
    expect(host.connects).toBe(1);
    expect(host.sent.filter((s) => s === 'start-apply')).toHaveLength(1);
    expect(host.sent.slice(0, 7)).toEqual([
      'probe',
      'prepare-work-dir',
      'apply-state',
      'start-apply',
      'apply-state',
      'apply-state',
      'apply-state',
    ]);
  });

  it('stops after a verified upload in pretend mode: no apply, no restart', async () => {
    const host = new ReplayedWindowsHost(await probeJson('win11-uefi-clean'));
    const r = await runOn(host, { mode: 'pretend' });
    expect(r.outcome).toBe('ready');
    expect(host.sent).toEqual(['probe', 'prepare-work-dir']);
    expect(host.uploads).toHaveLength(4);
  });
});
