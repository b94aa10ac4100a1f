// One host's whole pipeline: connect → probe → plan → upload → apply → reboot → verify.
// Every path ends in exactly one outcome class; every change made before the reboot is
// undone when a later step fails.
import { posix } from 'node:path';
import { type HostAgent, imageDownloadRecord } from '../agent/host-agent.ts';
import { RefusalError } from '../errors.ts';
import type { Facts } from '../facts/facts.ts';
import { redactSecrets } from '../network/redact.ts';
import type { Plan } from '../plan/plan.ts';
import type { HostReport } from '../report/host-report.ts';
import { shellQuote } from '../ssh/quote.ts';
import type { SshSession } from '../ssh/session.ts';
import { applyPlan, type SessionSource, undoApply } from './apply.ts';
import { connectBalena, connectHost, type Prompts } from './connect.ts';
import { hostOsOf } from './host-os.ts';
import { describeError } from './next-step.ts';
import {
  comebackWatch,
  finishOnBalenaOS,
  finishOnOldOS,
  finishRefused,
  finishVerifyTimeout,
  stopBeforeApply,
} from './outcomes.ts';
import { planHost } from './plan-host.ts';
import { probeHost } from './probe.ts';
import { readBootId, rebootHost } from './reboot.ts';
import { HostRecorder } from './recorder.ts';
import type { RunResources } from './resources.ts';
import type { HostTarget, PipelineContext, RunSettings } from './settings.ts';
import { prepareWorkDir, uploadPayload } from './upload.ts';
import { isBalenaOsRelease, waitForComeback } from './verify.ts';
import { runWindowsHost } from './windows-host.ts';

export interface HostJob {
  target: HostTarget;
  settings: RunSettings;
  resources: RunResources;
  prompts: Prompts;
  ctx: PipelineContext;
  /** agent mode: the backend device, and the online check that `migrated` also needs */
  agent?: HostAgent;
}

/** The plan as a report shows it: payload bytes become sizes, never content. */
export function printablePlan(plan: Plan): unknown {
  return {
    ...plan,
    payload: plan.payload.map((f) => ({
      ...f,
      source: f.source.kind === 'file' ? f.source : { kind: 'bytes', sizeBytes: f.source.data.length },
    })),
  };
}

async function alreadyBalena(target: HostTarget, settings: RunSettings, prompts: Prompts): Promise<boolean> {
  try {
    const s = await connectBalena(target, settings, prompts);
    try {
      return isBalenaOsRelease((await s.exec('cat /etc/os-release')).stdout);
    } finally {
      await s.close().catch(() => {});
    }
  } catch {
    return false;
  }
}

export async function runHost(job: HostJob): Promise<HostReport> {
  const { target, settings, prompts, ctx } = job;
  const rec = new HostRecorder(
    {
      host: target.name,
      address: target.address,
      port: target.port,
      wave: ctx.wave,
      command: settings.command,
    },
    ctx,
  );
  const workDir = target.workDir ?? settings.workDir;
  if (job.agent) rec.report.balena = { ...job.agent.device };
  let session: SshSession | undefined;
  let applied = false;
  let phase = 'connect';
  const sessions: SessionSource = {
    get: () => session!,
    reconnect: async () => {
      await session?.close().catch(() => {});
      session = await connectHost(target, settings, prompts);
      return session;
    },
  };
  try {
    session = await rec.phase('connect', () => connectHost(target, settings, prompts));
    // cmd.exe or PowerShell answered: a Windows host, whose pipeline owns the session from here.
    if (hostOsOf(session.shell) === 'windows') {
      phase = 'probe';
      const windows = session;
      session = undefined;
      return await runWindowsHost(job, rec, windows, {
        old: () => connectHost(target, settings, prompts),
        balena: () => connectBalena(target, settings, prompts),
      });
    }

    phase = 'probe';
    const probed = await rec.phase('probe', () => probeHost(session!, workDir, { collectNetwork: true }));
    const facts: Facts = probed.facts;
    rec.setFacts(facts);
    if (facts.os.isBalenaOS) {
      ctx.log('already runs balenaOS: nothing to do');
      return rec.finish(settings.command === 'check' ? 'ready' : 'migrated');
    }

    phase = 'plan';
    const plan = await rec.phase('plan', () => planHost(job, session!, probed));
    rec.report.deviceType = plan.deviceType;
    rec.report.bootManager = plan.bootManager;
    rec.report.plan = printablePlan(plan);
    if (settings.command === 'check') return rec.finish('ready');

    phase = 'upload';
    await rec.phase('upload', async (record) => {
      await prepareWorkDir(session!, workDir);
      const dl = job.agent?.imageDownload;
      const { bytesSent, hostDownload } = await uploadPayload(
        session!,
        plan,
        (done, total, label) => ctx.progress(done, total, label),
        { hostDownload: dl ? { download: dl, tools: facts.tools } : undefined, log: ctx.log },
      );
      if (hostDownload && rec.report.balena)
        rec.report.balena.imageDownload = imageDownloadRecord(hostDownload);
      record.bytes = bytesSent;
      rec.report.bytesSent += bytesSent;
    });
    const stopped = stopBeforeApply(job, rec, 'rebooted');
    if (stopped) return stopped;

    phase = 'apply';
    applied = true;
    await rec.phase('apply', () => applyPlan(sessions, plan, { signal: ctx.signal }));

    phase = 'reboot';
    const oldBootId = await rec.phase('reboot', async () => {
      const id = await readBootId(session!);
      await rebootHost(session!, plan.rebootArgument);
      return id;
    });
    // Past this point the host is on its own: stage2 either writes or goes back.
    applied = false;
    await session.close().catch(() => {});
    session = undefined;

    phase = 'verify';
    const comeback = await rec.phase('verify', () =>
      waitForComeback({
        connectBalena: () => connectBalena(target, settings, prompts),
        connectOld: () => connectHost(target, settings, prompts),
        oldBootId,
        ...comebackWatch(job),
      }),
    );
    if (comeback.kind === 'balena') return await finishOnBalenaOS(comeback.session, rec, job);
    if (comeback.kind === 'old-os') {
      session = comeback.session;
      const logPath = posix.join(workDir, 'stage2.log');
      // stage2 saves its log in the work dir, or at the root of the boot partition without one
      const bootLog = posix.join(posix.dirname(plan.stage2ConfigPath), 'balena-migrate-stage2.log');
      let log = await session.exec(`cat ${shellQuote(logPath)}`, { sudo: true });
      if (log.exitCode !== 0) log = await session.exec(`cat ${shellQuote(bootLog)}`, { sudo: true });
      rec.report.stage2Log = log.exitCode === 0 ? redactSecrets(log.stdout) : null;
      await rec.phase('undo', () => undoApply(session!, workDir));
      return finishOnOldOS(rec, job, plan.stage2Config.mode === 'pretend', {
        oldOs: 'the old OS',
        reverted:
          'stage2 stopped before writing and the host went back to its old OS; the stage2 log says why',
        noLog: `the host came back on its old OS but stage2 left no log: stage2 may not have run (${plan.oneShot.mechanism} ignored?) or died before it could save one (a kernel panic reboots after 10 s)`,
      });
    }
    return finishVerifyTimeout(rec, job, 'the old OS', comeback.lastError);
  } catch (err) {
    if (err instanceof RefusalError) return finishRefused(rec, err.reasons);
    const error = describeError(err, { phase });
    if (phase === 'connect') {
      // A host migrated by an earlier run no longer answers on its old SSH port, but
      // balenaOS does on its own: report it migrated without touching it.
      if (await alreadyBalena(target, settings, prompts)) {
        ctx.log('the old OS does not answer but balenaOS does: migrated by an earlier run');
        return rec.finish(settings.command === 'check' ? 'ready' : 'migrated');
      }
      return rec.finish('unreachable', error);
    }
    if (applied) {
      // Something failed between the apply and the reboot: undo the boot setup.
      try {
        if (!session) await sessions.reconnect();
        await rec.phase('undo', () => undoApply(session!, workDir));
      } catch (undoErr) {
        return rec.finish('needs-attention', {
          class: error.class,
          message: `${error.message}; and the undo failed: ${(undoErr as Error).message}`,
          nextStep: `run 'sh ${posix.join(workDir, 'undo.sh')}' on the host as root, then check the boot setup`,
        });
      }
    }
    return rec.finish('failed', error);
  } finally {
    await session?.close().catch(() => {});
  }
}
