// One Windows host's pipeline, after connect found cmd.exe or PowerShell answering
// (host-os.ts): probe as administrator → plan → upload (SFTP, verified with Get-FileHash) →
// apply (apply.ps1: the ESP files, a Boot#### entry and BootNext, as a journaled
// transaction in a scheduled task) → restart → verify → on a stage2 failure, undo.ps1.
// Same outcomes and same safety rule as the Linux pipeline: every change before the
// restart is undone when a later step fails. The commands are built in
// platform/windows/*; this module only runs them and decides.
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildInitramfs } from '../../stage2/build/initramfs.ts';
import { deviceTypeMismatch } from '../agent/host-agent.ts';
import { RefusalError, RemoteCommandError, UnreachableError } from '../errors.ts';
import { parseWindowsFacts, type WindowsFacts } from '../facts/windows.ts';
import { redactSecrets } from '../network/redact.ts';
import {
  applyVerdict,
  parseWindowsStage2Log,
  readablePowerShellError,
  windowsPrepareWorkDirCommand,
  windowsReadStage2LogCommand,
  windowsRebootCommand,
  windowsWorkDir,
} from '../platform/windows/host-commands.ts';
import { readKernelConfigBeside } from '../platform/windows/kernel-config.ts';
import { sftpPath, type WindowsPlan } from '../platform/windows/plan.ts';
import { planWindowsHost } from '../platform/windows/plan-host.ts';
import { windowsProbeCommand } from '../platform/windows/probe.ts';
import type { PowerShellCommand } from '../platform/windows/ps-quote.ts';
import {
  parseWindowsApplyState,
  renderWindowsApplyScripts,
  WINDOWS_APPLY_FILES,
  windowsApplyStateCommand,
  windowsStartApplyCommand,
  windowsUndoCommand,
} from '../platform/windows/render.ts';
import { windowsUploadVerifier } from '../platform/windows/upload-verifier.ts';
import type { HostReport } from '../report/host-report.ts';
import type { ExecResult, SshSession } from '../ssh/session.ts';
import { readBootIdOf } from './host-os.ts';
import { describeError } from './next-step.ts';
import {
  comebackWatch,
  finishOnBalenaOS,
  finishOnOldOS,
  finishRefused,
  finishVerifyTimeout,
  stopBeforeApply,
} from './outcomes.ts';
import { loadPlanInputs, timestamp } from './plan-host.ts';
import type { HostRecorder } from './recorder.ts';
import type { HostJob } from './run-host.ts';
import { waitForComeback } from './verify.ts';

/** What the Windows pipeline uses of a session (an SshSession whose shell is cmd.exe or PowerShell). */
export type WindowsSession = Pick<SshSession, 'exec' | 'upload' | 'close' | 'target' | 'shell'>;

export interface WindowsConnections {
  /** a new session to the host's Windows (after the restart, or to reconnect) */
  old(): Promise<WindowsSession>;
  /** a session to balenaOS' own SSH port */
  balena(): Promise<SshSession>;
}

/** How long the probe may take: Get-BitLockerVolume and the ESP mount can be slow on a busy PC. */
const PROBE_TIMEOUT_MS = 5 * 60_000;

/** Runs a PowerShell command; a non-zero exit throws with PowerShell's error made readable. */
export async function runPowerShell(
  session: WindowsSession,
  what: string,
  cmd: PowerShellCommand,
  opts: { timeoutMs?: number } = {},
): Promise<ExecResult> {
  const r = await session.exec(cmd.command, {
    ...(cmd.stdin === undefined ? {} : { stdin: cmd.stdin }),
    ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
  });
  if (r.exitCode !== 0 || r.timedOut) {
    const stderr = readablePowerShellError(r.stderr);
    const how = r.timedOut ? `timed out after ${r.durationMs} ms` : `exited with ${r.exitCode}`;
    throw new RemoteCommandError(
      `${what} on ${session.target} ${how}${stderr ? `:\n${stderr}` : ' (no stderr)'}`,
      r.exitCode,
      stderr,
    );
  }
  return r;
}

/** The probe, run as the login user (who must be an administrator for it to see everything). */
export async function probeWindows(session: WindowsSession, workDir: string): Promise<WindowsFacts> {
  const r = await runPowerShell(session, 'the Windows probe', windowsProbeCommand(workDir), {
    timeoutMs: PROBE_TIMEOUT_MS,
  });
  return parseWindowsFacts(r.stdout);
}

/** The refusal for a login that is not elevated, with what to do about it. */
export function notAdministratorRefusal(facts: WindowsFacts, user: string): string {
  return (
    `the SSH user ${user} is not an administrator on ${facts.hostname} (or its session is not elevated): ` +
    'the probe cannot read Secure Boot, BitLocker or the EFI variables and the boot setup cannot be ' +
    'written. Log in as a member of the local Administrators group (for key logins of administrators ' +
    'Windows OpenSSH reads C:\\ProgramData\\ssh\\administrators_authorized_keys, not the user profile), ' +
    'then run check again'
  );
}

/** The stage2 initramfs without host modules: the supplied kernel has everything built in. */
const initramfsCache = new WeakMap<Buffer, { data: Buffer; sha256: string }>();
function windowsInitramfs(busybox: Buffer): { data: Buffer; sha256: string } {
  let built = initramfsCache.get(busybox);
  if (!built) {
    const data = buildInitramfs({ busybox, modules: [], kernelRelease: 'migration-kernel' });
    built = { data, sha256: createHash('sha256').update(data).digest('hex') };
    initramfsCache.set(busybox, built);
  }
  return built;
}

/** Plans the host from its facts and the run's inputs; throws RefusalError with every reason. */
async function planHost(job: HostJob, facts: WindowsFacts, workDir: string): Promise<WindowsPlan> {
  const { target, settings } = job;
  const { image, configJson, busybox, kernel, imageDeviceType, configDeviceType } = await loadPlanInputs(
    job,
    facts.arch,
  );
  const result = planWindowsHost({
    hostName: target.name,
    facts,
    mode: settings.mode,
    image,
    configJson,
    workDir,
    kernel,
    initramfs: windowsInitramfs(busybox),
    failMode: settings.failMode,
    ramMarginBytes: settings.ramMarginBytes,
    timestamp: timestamp(),
    stage2Pretend: settings.stage2Pretend ?? false,
    imageDeviceType,
    configDeviceType,
    allowDeviceTypeMismatch: settings.allowDeviceTypeMismatch ?? false,
    kernelConfig: kernel.source === 'file' ? readKernelConfigBeside(kernel.file.path) : null,
    // the startup.nsh fallback moves Windows' boot files: opt-in only (stage2.windowsFallback)
    windowsFallback: settings.windowsFallback ?? 'none',
  });
  if (!result.ok) throw new RefusalError(result.reasons);
  const mismatch = job.agent && deviceTypeMismatch(result.plan.deviceType, job.agent.deviceType);
  if (mismatch) throw new RefusalError([mismatch]);
  return result.plan;
}

/** Creates the work dir with its ACL and uploads the payload, each file verified by Get-FileHash. */
export async function uploadWindowsPayload(
  session: WindowsSession,
  plan: WindowsPlan,
  onProgress?: (done: number, total: number, label: string) => void,
): Promise<number> {
  await runPowerShell(session, 'creating the work dir', windowsPrepareWorkDirCommand(plan.workDir));
  const total = plan.payload.reduce((n, f) => n + f.sizeBytes, 0);
  let before = 0;
  let sent = 0;
  for (const file of plan.payload) {
    const source = file.source.kind === 'file' ? { path: file.source.path } : { data: file.source.data };
    const r = await session.upload(source, file.remotePath, {
      sha256: file.sha256,
      sizeBytes: file.sizeBytes,
      mode: file.mode,
      verifier: windowsUploadVerifier,
      onProgress: (done) => onProgress?.(before + done, total, file.role),
    });
    sent += r.bytesSent;
    before += file.sizeBytes;
    onProgress?.(before, total, file.role);
  }
  return sent;
}

export interface WindowsApplyOptions {
  timeoutMs?: number;
  pollMs?: number;
}

/**
 * Uploads apply.ps1 and undo.ps1, starts the transaction (a scheduled task, so it outlives the
 * SSH session) and waits for it to end, reconnecting if the link drops. Resumes: a
 * transaction already committed for this very plan is not repeated.
 */
export async function applyWindowsPlan(
  first: WindowsSession,
  reconnect: () => Promise<WindowsSession>,
  plan: WindowsPlan,
  opts: WindowsApplyOptions = {},
): Promise<WindowsSession> {
  let session = first;
  const scripts = renderWindowsApplyScripts(plan);
  const readState = async (s: WindowsSession) =>
    parseWindowsApplyState(
      (await runPowerShell(s, 'reading the apply state', windowsApplyStateCommand(plan.workDir))).stdout,
    );
  const existing = await readState(session);
  if (!(existing.state === 'committed' && existing.planHash === scripts.planHash)) {
    for (const [name, text] of [
      [WINDOWS_APPLY_FILES.apply, scripts.apply],
      [WINDOWS_APPLY_FILES.undo, scripts.undo],
    ] as const) {
      const data = Buffer.from(text, 'utf8');
      await session.upload({ data }, sftpPath(`${plan.workDir}\\${name}`), {
        sha256: createHash('sha256').update(data).digest('hex'),
        sizeBytes: data.length,
        mode: 0o700,
        verifier: windowsUploadVerifier,
      });
    }
    await runPowerShell(session, 'starting apply.ps1', windowsStartApplyCommand(plan.workDir));
  }
  const deadline = Date.now() + (opts.timeoutMs ?? 10 * 60_000);
  while (Date.now() < deadline) {
    let status: ReturnType<typeof parseWindowsApplyState>;
    try {
      status = await readState(session);
    } catch (err) {
      if (!(err instanceof UnreachableError)) throw err;
      // The scheduled task goes on without us; come back and read how it ended.
      await sleep(opts.pollMs ?? 1000);
      session = await reconnect();
      continue;
    }
    const verdict = applyVerdict(status, scripts.planHash);
    if (verdict.kind === 'done') return session;
    if (verdict.kind === 'failed') throw new RemoteCommandError(verdict.message, 1, status.reason);
    await sleep(opts.pollMs ?? 1000);
  }
  throw new RemoteCommandError('apply.ps1 did not finish in time; undo will run', null, '');
}

/** Runs undo.ps1: undoes every begun step from the journal; safe to run twice. */
export async function undoWindows(session: WindowsSession, workDir: string): Promise<string> {
  return (await runPowerShell(session, 'undo.ps1', windowsUndoCommand(workDir))).stdout.trim();
}

/** Stage2's log from the work dir (or the ESP root), secrets redacted; null when there is none. */
export async function readWindowsStage2Log(
  session: WindowsSession,
  plan: WindowsPlan,
): Promise<string | null> {
  const logName = String(plan.stage2Config.log_name ?? 'stage2.log');
  const r = await runPowerShell(
    session,
    'reading the stage2 log',
    windowsReadStage2LogCommand(plan.workDir, logName),
  ).catch(() => null);
  const log = r ? parseWindowsStage2Log(r.stdout) : null;
  return log ? redactSecrets(log.text) : null;
}

/** Restarts Windows once; returns the boot id it had before. */
export async function restartWindows(session: WindowsSession): Promise<string> {
  const id = await readBootIdOf(session);
  if (id === null)
    throw new RemoteCommandError(`cannot read the last boot time of ${session.target}`, null, '');
  await runPowerShell(session, 'restarting Windows', windowsRebootCommand());
  return id;
}

/**
 * The Windows pipeline from the probe on, for a session connect has opened. Ends the report
 * in exactly one outcome; never throws for a host's failure.
 */
export async function runWindowsHost(
  job: HostJob,
  rec: HostRecorder,
  first: WindowsSession,
  connect: WindowsConnections,
  opts: { apply?: WindowsApplyOptions; verifyPollMs?: number } = {},
): Promise<HostReport> {
  const { target, settings, ctx } = job;
  const workDir = windowsWorkDir(target.workDir ?? settings.workDir);
  let session: WindowsSession | undefined = first;
  let applied = false;
  let phase = 'probe';
  const reconnect = async (): Promise<WindowsSession> => {
    await session?.close().catch(() => {});
    session = undefined;
    session = await connect.old();
    return session;
  };
  try {
    const facts = await rec.phase('probe', () => probeWindows(session!, workDir));
    rec.report.windowsFacts = facts;
    if (!facts.isAdmin) throw new RefusalError([notAdministratorRefusal(facts, target.user)]);

    phase = 'plan';
    const plan = await rec.phase('plan', () => planHost(job, facts, workDir));
    rec.report.deviceType = plan.deviceType;
    rec.report.bootManager = plan.bootManager;
    rec.report.plan = {
      ...plan,
      payload: plan.payload.map((f) => ({
        ...f,
        source: f.source.kind === 'file' ? f.source : { kind: 'bytes', sizeBytes: f.source.data.length },
      })),
    };
    if (settings.command === 'check') return rec.finish('ready');

    phase = 'upload';
    await rec.phase('upload', async (record) => {
      const sent = await uploadWindowsPayload(session!, plan, (d, t, l) => ctx.progress(d, t, l));
      record.bytes = sent;
      rec.report.bytesSent += sent;
    });
    const stopped = stopBeforeApply(job, rec, 'restarted');
    if (stopped) return stopped;

    phase = 'apply';
    applied = true;
    session = await rec.phase('apply', () => applyWindowsPlan(session!, reconnect, plan, opts.apply));

    phase = 'reboot';
    const oldBootId = await rec.phase('reboot', () => restartWindows(session!));
    // Past this point the host is on its own: BootNext starts stage2 once, or Windows again.
    applied = false;
    await session.close().catch(() => {});
    session = undefined;

    phase = 'verify';
    const comeback = await rec.phase('verify', () =>
      waitForComeback({
        connectBalena: () => connect.balena(),
        connectOld: () => connect.old() as Promise<SshSession>,
        readBootId: (s) => readBootIdOf(s),
        oldBootId,
        ...comebackWatch(job),
        ...(opts.verifyPollMs === undefined ? {} : { pollMs: opts.verifyPollMs }),
      }),
    );
    if (comeback.kind === 'balena') return await finishOnBalenaOS(comeback.session, rec, job);
    if (comeback.kind === 'old-os') {
      session = comeback.session;
      rec.report.stage2Log = await readWindowsStage2Log(session, plan);
      await rec.phase('undo', () => undoWindows(session!, workDir));
      return finishOnOldOS(rec, job, plan.stage2Config.mode === 'pretend', {
        oldOs: 'Windows',
        reverted:
          'stage2 stopped before writing and the host went back to Windows; undo.ps1 removed the boot setup; the stage2 log says why',
        noLog:
          'the host came back on Windows but stage2 left no log: the firmware may have ignored BootNext, or stage2 died before it could save one; undo.ps1 removed the boot setup',
      });
    }
    return finishVerifyTimeout(rec, job, 'Windows', comeback.lastError);
  } catch (err) {
    if (err instanceof RefusalError) return finishRefused(rec, err.reasons);
    const error = describeError(err, { phase });
    if (applied) {
      // Something failed between the start of apply.ps1 and the restart: undo the boot setup.
      try {
        if (!session) await reconnect();
        await rec.phase('undo', () => undoWindows(session!, workDir));
      } catch (undoErr) {
        return rec.finish('needs-attention', {
          class: error.class,
          message: `${error.message}; and the undo failed: ${(undoErr as Error).message}`,
          nextStep: `run '${workDir}\\${WINDOWS_APPLY_FILES.undo}' on the host in an elevated PowerShell, then check the boot setup (bcdedit /enum firmware)`,
        });
      }
    }
    return rec.finish('failed', error);
  } finally {
    await session?.close().catch(() => {});
  }
}
