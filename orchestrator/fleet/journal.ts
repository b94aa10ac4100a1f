// The run journal: RUNDIR/journal.jsonl, an append-only record of every host's phase
// transitions and final outcome, fsync'd line by line so that a run killed at any moment
// (kill -9, a closed laptop lid, a power cut) can be resumed from where each host was.
import {
  closeSync,
  fstatSync,
  fsync,
  fsyncSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { type HostReport, OUTCOMES, type Outcome, PHASES, type PhaseName } from '../report/host-report.ts';

export type JournalRecord =
  /** one per invocation of the runner on this directory */
  | { type: 'run'; at: string; command: 'check' | 'run'; hosts: number; resumed: boolean }
  | { type: 'start'; at: string; host: string; wave: number; resumeFrom: PhaseName | null }
  | { type: 'phase'; at: string; host: string; phase: PhaseName }
  | { type: 'outcome'; at: string; host: string; outcome: Outcome; report: HostReport };

/** What the journal knows about one host. */
export interface HostJournal {
  /** the last phase the host entered in any attempt, null when it never got that far */
  lastPhase: PhaseName | null;
  /** the outcome of the latest attempt, null when that attempt never finished */
  outcome: Outcome | null;
  /** the report of the latest finished attempt */
  report: HostReport | null;
  /** how many times the host was started */
  attempts: number;
}

export interface JournalState {
  hosts: Map<string, HostJournal>;
  /** lines that could not be read: a torn last line after a kill, or damage */
  skippedLines: number;
}

export const JOURNAL_FILE = 'journal.jsonl';
export const FAILED_HOSTS_FILE = 'failed-hosts.txt';

export interface Journal {
  path: string;
  /**
   * Writes the record; it survives a kill -9 as soon as this returns. `sync` (the default)
   * also fsyncs before returning, so it survives a power cut too. `sync: false` leaves the
   * fsync to a background flush shared by every record written meanwhile (a group commit),
   * for records a resume can do without: with 50 hosts in flight, an fsync per phase blocked
   * the event loop for seconds (measured by `npm run bench`).
   */
  append(record: JournalRecord, options?: { sync?: boolean }): void;
  /** fsyncs what was written, then closes. */
  close(): void;
}

/** fsyncs a directory so a file created in it survives a crash; not every platform can. */
function syncDirectory(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Windows cannot open a directory; the file's own fsync is the best we get there.
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/**
 * Opens RUNDIR/journal.jsonl for appending. A torn last line left by a kill is closed with a
 * newline first, so the next record starts on a line of its own.
 */
export function openJournal(runDir: string): Journal {
  const path = join(runDir, JOURNAL_FILE);
  let fd: number | null = openSync(path, 'a+');
  const { size } = fstatSync(fd);
  if (size === 0) syncDirectory(runDir);
  else {
    const last = Buffer.alloc(1);
    readSync(fd, last, 0, 1, size - 1);
    if (last[0] !== 0x0a) {
      writeSync(fd, '\n');
      fsyncSync(fd);
    }
  }
  // The background flush: one fsync in flight at a time; records written while it runs are
  // covered by the next one. The descriptor is closed only once no fsync is in flight.
  let unsynced = false;
  let flushing = false;
  let closeWhenFlushed = false;
  const flush = (): void => {
    if (flushing || fd === null || !unsynced) return;
    const current = fd;
    flushing = true;
    unsynced = false;
    fsync(current, () => {
      // An error here resurfaces at the next synchronous append or at close.
      flushing = false;
      if (closeWhenFlushed) {
        closeSync(current);
        return;
      }
      flush();
    });
  };
  return {
    path,
    append(record, options) {
      if (fd === null) throw new Error(`the journal ${path} is closed`);
      writeSync(fd, `${JSON.stringify(record)}\n`);
      if (options?.sync ?? true) {
        fsyncSync(fd);
        unsynced = false;
      } else {
        unsynced = true;
        flush();
      }
    },
    close() {
      if (fd === null) return;
      const current = fd;
      fd = null;
      if (unsynced) fsyncSync(current);
      if (flushing) closeWhenFlushed = true;
      else closeSync(current);
    },
  };
}

function isPhase(value: unknown): value is PhaseName {
  return typeof value === 'string' && (PHASES as readonly string[]).includes(value);
}

function isOutcome(value: unknown): value is Outcome {
  return typeof value === 'string' && (OUTCOMES as readonly string[]).includes(value);
}

/** Parses one journal line; null for a torn or foreign line. */
function parseRecord(line: string): JournalRecord | null {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const record = value as Record<string, unknown>;
  switch (record.type) {
    case 'run':
      return record as JournalRecord;
    case 'start':
      return typeof record.host === 'string' ? (record as JournalRecord) : null;
    case 'phase':
      return typeof record.host === 'string' && isPhase(record.phase) ? (record as JournalRecord) : null;
    case 'outcome':
      return typeof record.host === 'string' &&
        isOutcome(record.outcome) &&
        typeof record.report === 'object' &&
        record.report !== null
        ? (record as JournalRecord)
        : null;
    default:
      return null;
  }
}

/** Folds journal text into per-host state; unreadable lines are counted and skipped. */
export function readJournalText(text: string): JournalState {
  const hosts = new Map<string, HostJournal>();
  let skippedLines = 0;
  const entry = (host: string): HostJournal => {
    let found = hosts.get(host);
    if (!found) {
      found = { lastPhase: null, outcome: null, report: null, attempts: 0 };
      hosts.set(host, found);
    }
    return found;
  };
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const record = parseRecord(line);
    if (record === null) {
      skippedLines++;
      continue;
    }
    switch (record.type) {
      case 'run':
        break;
      case 'start': {
        const host = entry(record.host);
        host.attempts++;
        // A new attempt has no outcome yet; the phase it resumes after stays until it moves on.
        host.outcome = null;
        host.report = null;
        break;
      }
      case 'phase':
        entry(record.host).lastPhase = record.phase;
        break;
      case 'outcome': {
        const host = entry(record.host);
        host.outcome = record.outcome;
        host.report = record.report;
        break;
      }
    }
  }
  return { hosts, skippedLines };
}

/** Reads RUNDIR/journal.jsonl; a missing journal is an empty one. */
export function loadJournal(runDir: string): JournalState {
  let text: string;
  try {
    text = readFileSync(join(runDir, JOURNAL_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { hosts: new Map(), skippedLines: 0 };
    throw error;
  }
  return readJournalText(text);
}

/**
 * Writes RUNDIR/failed-hosts.txt, one host name per line (usable as `--limit @file`),
 * atomically: a reader never sees half a list.
 */
export function writeFailedHosts(runDir: string, hostNames: readonly string[]): string {
  const path = join(runDir, FAILED_HOSTS_FILE);
  const temporary = `${path}.tmp`;
  writeFileSync(temporary, hostNames.map((name) => `${name}\n`).join(''));
  renameSync(temporary, path);
  return path;
}
