// The end of a migration, whatever OS the host left: it answered on balenaOS after the
// reboot. Linux and Windows pipelines finish the same way from here.
import { redactSecrets } from '../network/redact.ts';
import type { HostReport } from '../report/host-report.ts';
import type { SshSession } from '../ssh/session.ts';
import type { HostRecorder } from './recorder.ts';
import type { HostJob } from './run-host.ts';

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
