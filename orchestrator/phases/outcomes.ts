// How a host's pipeline ends, whatever OS the host ran: the rules for the pretend stop before
// the boot setup, for waiting after the reboot, and for the outcome of each way the host can
// come back. The Linux (run-host.ts) and Windows (windows-host.ts) pipelines share them; only
// the words for the old OS and the host-specific steps differ.
import { redactSecrets } from '../network/redact.ts';
import type { HostReport } from '../report/host-report.ts';
import type { SshSession } from '../ssh/session.ts';
import type { HostRecorder } from './recorder.ts';
import type { HostJob } from './run-host.ts';
import type { VerifyOptions } from './verify.ts';

/**
 * After the upload: pretend mode ends here `ready`, and a Ctrl-C stops the host before any
 * boot setup. Returns the report when the pipeline ends, else null.
 */
export function stopBeforeApply(
  job: HostJob,
  rec: HostRecorder,
  restart: 'rebooted' | 'restarted',
): HostReport | null {
  const { settings, ctx } = job;
  if (settings.mode === 'pretend') {
    ctx.log(`pretend: payload uploaded and verified; boot setup not applied, host not ${restart}`);
    return rec.finish('ready');
  }
  if (ctx.signal.aborted)
    throw new Error('aborted by the operator before the boot setup; nothing was applied');
  return null;
}

/** The part of waitForComeback's options every pipeline sets the same way. */
export function comebackWatch(job: HostJob): Pick<VerifyOptions, 'timeoutMs' | 'signal' | 'onWait'> {
  const { settings, ctx } = job;
  return {
    timeoutMs: settings.verify.timeoutSeconds * 1000,
    signal: ctx.signal,
    // seconds waited of the allowed time, so the display shows the host is still being watched
    onWait: (elapsedMs) =>
      ctx.progress(
        Math.round(elapsedMs / 1000),
        settings.verify.timeoutSeconds,
        'seconds waiting for the host',
      ),
  };
}

/**
 * Keeps stage2's log from resin-boot and closes the balenaOS session. In agent mode balenaOS
 * on the host is not enough: the backend must see the device online, else a human looks.
 */
export async function finishOnBalenaOS(
  session: SshSession,
  rec: HostRecorder,
  job: HostJob,
): Promise<HostReport> {
  const log = await session.exec('cat /mnt/boot/balena-migrate-stage2.log');
  rec.report.stage2Log = log.exitCode === 0 ? redactSecrets(log.stdout) : null;
  await session.close().catch(() => {});
  if (job.agent) {
    const online = await job.agent.confirmOnline(job.ctx.signal, job.ctx.log);
    if (rec.report.balena) rec.report.balena.online = online.ok;
    if (!online.ok) return rec.finish('needs-attention', online.error);
  }
  return rec.finish('migrated');
}

/**
 * The host came back on its old OS, its stage2 log read and the boot setup undone: a stage2
 * rehearsal (stage2.pretend) that passed every check ends `ready`, anything else `reverted`.
 */
export function finishOnOldOS(
  rec: HostRecorder,
  job: HostJob,
  stage2Pretended: boolean,
  words: { oldOs: string; reverted: string; noLog: string },
): HostReport {
  if (stage2Pretended && /pretend: every check passed/.test(rec.report.stage2Log ?? '')) {
    job.ctx.log(
      `stage2 pretend: every check passed on the device; nothing was written; back on ${words.oldOs}`,
    );
    return rec.finish('ready');
  }
  return rec.finish('reverted', {
    class: 'Stage2Reverted',
    message: rec.report.stage2Log ? words.reverted : words.noLog,
    nextStep: 'read the stage2 log in this report, fix the cause, and re-run this host',
  });
}

/** Neither balenaOS nor the old OS answered in time. */
export function finishVerifyTimeout(
  rec: HostRecorder,
  job: HostJob,
  oldOs: string,
  lastError: string,
): HostReport {
  return rec.finish('needs-attention', {
    class: 'VerifyTimeout',
    message: `neither balenaOS nor ${oldOs} answered within ${job.settings.verify.timeoutSeconds}s (${lastError})`,
    nextStep: 'look at the device (console, network): stage2 may still be writing, or it may need a human',
  });
}

/** The host refused before anything was changed on it. */
export function finishRefused(rec: HostRecorder, reasons: string[]): HostReport {
  rec.report.refusalReasons = reasons;
  return rec.finish('refused', {
    class: 'Refused',
    message: reasons.join('; '),
    nextStep: 'fix what the reasons say (nothing was changed on the host), then re-run',
  });
}
