// Run as a process of its own by memory.ts: pushes one file to many hosts at once the way the
// pipeline does (a session per host, prepareWorkDir, uploadPayload), then prints one JSON line
// with its peak RSS (VmHWM) and what it did. Configured by BENCH_UPLOAD_MANY (JSON).
import { readFileSync } from 'node:fs';
import { tuneV8ForTransfers } from '../../orchestrator/cli/v8-tuning.ts';
import { prepareWorkDir, uploadPayload } from '../../orchestrator/phases/upload.ts';
import type { Plan } from '../../orchestrator/plan/plan.ts';
import { SshSession } from '../../orchestrator/ssh/session.ts';

export interface UploadManyConfig {
  ports: number[];
  keyPath: string;
  knownHostsFile: string;
  file: string;
  sizeBytes: number;
  sha256: string;
  /** host i works in `${workDirPrefix}-${i}` */
  workDirPrefix: string;
}

function statusKiB(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return Number(m?.[1] ?? 0);
}

// the same V8 settings as the CLI (orchestrator/cli/v8-tuning.ts)
tuneV8ForTransfers();
const config = JSON.parse(process.env.BENCH_UPLOAD_MANY ?? '{}') as UploadManyConfig;
const rssAtStart = statusKiB('VmRSS');
// Where the memory is, at the moment RSS peaks: the JS heap, or buffers outside it.
let atPeak = { rss: 0, heapUsed: 0, arrayBuffers: 0 };
const sampler = setInterval(() => {
  const m = process.memoryUsage();
  if (m.rss > atPeak.rss) atPeak = { rss: m.rss, heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers };
}, 50);
const start = process.hrtime.bigint();
const sessions = await Promise.all(
  config.ports.map((port) =>
    SshSession.connect({
      host: '127.0.0.1',
      port,
      username: 'root',
      identityFiles: [config.keyPath],
      agentSocket: null,
      knownHostsFile: config.knownHostsFile,
    }),
  ),
);
const results = await Promise.all(
  sessions.map(async (session, i) => {
    const workDir = `${config.workDirPrefix}-${i}`;
    await prepareWorkDir(session, workDir);
    // uploadPayload reads only the plan's payload list.
    const plan = {
      payload: [
        {
          role: 'image',
          source: { kind: 'file', path: config.file },
          remotePath: `${workDir}/balena-image.img`,
          sizeBytes: config.sizeBytes,
          sha256: config.sha256,
          mode: 0o644,
        },
      ],
    } as unknown as Plan;
    const { bytesSent } = await uploadPayload(session, plan, () => {});
    await session.close();
    return bytesSent;
  }),
);
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
clearInterval(sampler);
process.stdout.write(
  `${JSON.stringify({
    hosts: sessions.length,
    bytesSent: results.reduce((a, b) => a + b, 0),
    seconds,
    rssAtStartKiB: rssAtStart,
    peakRssKiB: statusKiB('VmHWM'),
    atPeakMiB: {
      heapUsed: Math.round(atPeak.heapUsed / 1048576),
      arrayBuffers: Math.round(atPeak.arrayBuffers / 1048576),
    },
  })}\n`,
);
process.exit(0);
