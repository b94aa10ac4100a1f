// Pushes the plan's payload into the host's working directory: resumable, verified by
// sha256 on the host, skipped when already there.
import type { Plan } from '../plan/plan.ts';
import { shellQuote } from '../ssh/quote.ts';
import type { SshSession } from '../ssh/session.ts';
import {
  downloadOnHost,
  type HostDownloadResult,
  type HostDownloadTools,
  type HostImageDownload,
} from './host-download.ts';

export type UploadProgress = (done: number, total: number, label: string) => void;

/** Creates the working directory owned by the login user so SFTP (which runs as that user) can write. */
export async function prepareWorkDir(session: SshSession, workDir: string): Promise<void> {
  const dir = shellQuote(workDir);
  if (session.isRoot) {
    await session.execChecked(`mkdir -p ${dir} && chmod 0700 ${dir}`);
  } else {
    await session.execChecked(`mkdir -p ${dir} && chown "$SUDO_UID:$SUDO_GID" ${dir} && chmod 0700 ${dir}`, {
      sudo: true,
    });
  }
}

export interface UploadOptions {
  /** agent.hostDownload: the host first tries to fetch the image itself (phases/host-download.ts) */
  hostDownload?: { download: HostImageDownload; tools: HostDownloadTools } | undefined;
  log?: (message: string) => void;
}

export async function uploadPayload(
  session: SshSession,
  plan: Plan,
  onProgress?: UploadProgress,
  opts: UploadOptions = {},
): Promise<{ bytesSent: number; hostDownload?: HostDownloadResult }> {
  const total = plan.payload.reduce((n, f) => n + f.sizeBytes, 0);
  let doneBefore = 0;
  let bytesSent = 0;
  let hostDownload: HostDownloadResult | undefined;
  const log = opts.log ?? (() => {});
  for (const file of plan.payload) {
    const dl = opts.hostDownload;
    // Only the image the laptop verified, and only when the plan pushes exactly that file.
    if (
      file.role === 'image' &&
      dl &&
      dl.download.sha256 === file.sha256 &&
      dl.download.sizeBytes === file.sizeBytes
    ) {
      hostDownload = await downloadOnHost(
        session,
        file.remotePath,
        file.mode,
        dl.download,
        dl.tools,
        log,
        (done) => onProgress?.(doneBefore + Math.min(done, file.sizeBytes), total, 'image (host download)'),
      );
      log(
        hostDownload.ok
          ? `the host downloaded the image itself with ${hostDownload.tool} and it is verified (sha256 ${file.sha256})`
          : `the host could not download the image itself (${hostDownload.reason}): pushing it from here`,
      );
    }
    const source = file.source.kind === 'file' ? { path: file.source.path } : { data: file.source.data };
    const result = await session.upload(source, file.remotePath, {
      sha256: file.sha256,
      sizeBytes: file.sizeBytes,
      mode: file.mode,
      onProgress: (done) => onProgress?.(doneBefore + done, total, file.role),
    });
    bytesSent += result.bytesSent;
    doneBefore += file.sizeBytes;
    onProgress?.(doneBefore, total, file.role);
  }
  return { bytesSent, ...(hostDownload ? { hostDownload } : {}) };
}
