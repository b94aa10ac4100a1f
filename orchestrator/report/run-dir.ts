// The run directory on disk: RUNDIR/run.json, RUNDIR/hosts/<host>/report.json, and the
// fleet reports rendered from them. `balena-migrate report RUNDIR` re-renders from here.
// Every write is atomic (temp file + rename) so a crash never leaves half a report.
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ConfigError } from '../errors.ts';
import { buildFleetReport, parseHostReport, RunMeta } from './fleet-report.ts';
import type { FleetReport, HostReport } from './host-report.ts';
import { renderHtmlReport } from './html.ts';
import { renderJunit } from './junit.ts';
import { renderSummaryMarkdown } from './markdown.ts';

export const RUN_FILE = 'run.json';
export const HOSTS_DIR = 'hosts';
export const HOST_REPORT_FILE = 'report.json';

/** The fleet files writeFleetReports produces, by role. */
export const FLEET_FILES = {
  json: 'fleet.json',
  markdown: 'summary.md',
  html: 'report.html',
  junit: 'junit.xml',
} as const;

/**
 * A directory name for a host that is always one safe path component. Plain lower-case
 * names (`pi-3`, `10.0.0.7`) are kept as they are; anything else (`../x`, `a/b`, `NUC-01`,
 * spaces, very long names) is reduced to [a-z0-9._-] and suffixed with a hash of the full
 * name, so two hosts never share a directory, not even on case-insensitive filesystems.
 */
export function hostDirName(host: string): string {
  if (/^[a-z0-9][a-z0-9._-]{0,99}$/.test(host)) return host;
  const readable = host
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '_')
    .replace(/^[._-]+/, '')
    .slice(0, 80);
  const hash = createHash('sha256').update(host, 'utf8').digest('hex').slice(0, 10);
  return `${readable || 'host'}-${hash}`;
}

/** RUNDIR/hosts/<safe name>: where a host's report and collected files live. */
export function hostDir(runDir: string, host: string): string {
  return join(runDir, HOSTS_DIR, hostDirName(host));
}

/** Writes `data` to `path` so readers see the old file or the whole new one, never a part. */
export function writeFileAtomic(path: string, data: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempNameFor(path);
  try {
    const fd = openSync(tmp, 'w', 0o644);
    try {
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * writeFileAtomic off the event loop: host reports are written while other hosts' SSH
 * sessions run, and a synchronous fsync per host stalls all of them (`npm run bench`).
 */
export async function writeFileAtomicAsync(path: string, data: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempNameFor(path);
  try {
    const file = await open(tmp, 'w', 0o644);
    try {
      await file.writeFile(data);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

function tempNameFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Writes run.json (the runner calls this at the start and again at the end of a run). */
export function writeRunMeta(runDir: string, meta: RunMeta): string {
  const path = join(runDir, RUN_FILE);
  writeFileAtomic(path, `${JSON.stringify(meta, null, 2)}\n`);
  return path;
}

/** Writes RUNDIR/hosts/<host>/report.json and returns its path. */
export async function writeHostReport(runDir: string, report: HostReport): Promise<string> {
  const path = join(hostDir(runDir, report.host), HOST_REPORT_FILE);
  await writeFileAtomicAsync(path, `${JSON.stringify(report, null, 2)}\n`);
  return path;
}

/**
 * Reads run.json and every hosts/<host>/report.json into a FleetReport. A host directory
 * whose report is missing or unreadable still shows up, as needs-attention with a next
 * step, so a broken file can never make a host vanish from the summary.
 */
export function readFleetReport(runDir: string): FleetReport {
  const meta = readRunMeta(runDir);
  const hostsRoot = join(runDir, HOSTS_DIR);
  const hosts: HostReport[] = [];
  if (existsSync(hostsRoot)) {
    const dirs = readdirSync(hostsRoot, { withFileTypes: true })
      .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
      .map((d) => d.name)
      .sort();
    for (const dir of dirs) hosts.push(readHostReport(join(hostsRoot, dir), dir, meta.command));
  }
  return buildFleetReport(meta, hosts);
}

/** Writes fleet.json, summary.md, report.html and junit.xml into the run dir; returns their paths. */
export function writeFleetReports(
  runDir: string,
  fleet: FleetReport,
): Record<keyof typeof FLEET_FILES, string> {
  const contents: Record<keyof typeof FLEET_FILES, string> = {
    json: `${JSON.stringify(fleet, null, 2)}\n`,
    markdown: renderSummaryMarkdown(fleet),
    html: renderHtmlReport(fleet),
    junit: renderJunit(fleet),
  };
  const paths = {} as Record<keyof typeof FLEET_FILES, string>;
  for (const key of Object.keys(FLEET_FILES) as Array<keyof typeof FLEET_FILES>) {
    paths[key] = join(runDir, FLEET_FILES[key]);
    writeFileAtomic(paths[key], contents[key]);
  }
  return paths;
}

function readRunMeta(runDir: string): RunMeta {
  const path = join(runDir, RUN_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ConfigError(
        `${runDir} is not a run directory: it has no ${RUN_FILE}`,
        { file: path },
        'pass the directory a run or check created (it holds run.json and hosts/)',
      );
    }
    throw err;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${RUN_FILE} is not valid JSON: ${(err as Error).message}`, { file: path });
  }
  const parsed = RunMeta.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(
      `${RUN_FILE} does not describe a run: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid'}`,
      { file: path },
    );
  }
  return parsed.data;
}

/** One host's report, or a needs-attention stand-in that says what is wrong with the file. */
function readHostReport(dir: string, dirName: string, command: 'check' | 'run'): HostReport {
  const path = join(dir, HOST_REPORT_FILE);
  const rel = `${HOSTS_DIR}/${dirName}/${HOST_REPORT_FILE}`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return standIn(dirName, command, `${rel} is missing: the run stopped before this host finished`);
    }
    return standIn(dirName, command, `${rel} could not be read: ${(err as Error).message}`);
  }
  try {
    return parseHostReport(JSON.parse(text));
  } catch (err) {
    const detail =
      err instanceof SyntaxError
        ? err.message
        : ((err as { issues?: Array<{ path: PropertyKey[]; message: string }> }).issues ?? [])
            .slice(0, 3)
            .map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`)
            .join('; ') || String(err);
    return standIn(dirName, command, `${rel} is not a valid host report: ${detail}`);
  }
}

function standIn(dirName: string, command: 'check' | 'run', message: string): HostReport {
  return {
    host: dirName,
    address: '',
    port: 0,
    wave: null,
    command,
    outcome: 'needs-attention',
    failed: true,
    deviceType: null,
    bootManager: null,
    startedAt: null,
    endedAt: null,
    durationMs: null,
    phases: [],
    bytesSent: 0,
    retries: 0,
    refusalReasons: [],
    error: {
      class: 'ReportReadError',
      message,
      nextStep:
        'check the host itself (its state is not recorded); if the run is still going, wait for it and re-render',
    },
    facts: null,
    plan: null,
    stage2Log: null,
  };
}
