// Fleet events: what the runner tells the world while a fleet runs. Every event goes to
// RUNDIR/events.jsonl; the same events drive the terminal display (progress.ts) and the plain
// or JSON lines a CI log gets.
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { formatProgressBytes, formatProgressDuration } from '../report/format.ts';
import type { Outcome, PhaseName } from '../report/host-report.ts';

interface At {
  /** ISO time the event happened */
  at: string;
}

export type FleetEvent = At &
  (
    | {
        type: 'run-started';
        runDir: string;
        command: 'check' | 'run';
        hosts: number;
        /** hosts this invocation runs (fewer than `hosts` on a resume) */
        toRun: number;
        waveSizes: number[];
        concurrency: number;
        /** failures tolerated, null for no limit */
        maxFailures: number | null;
        resumed: boolean;
      }
    | { type: 'wave-started'; wave: number; waves: number; hosts: string[] }
    | { type: 'wave-finished'; wave: number; waves: number; counts: Partial<Record<Outcome, number>> }
    | { type: 'host-started'; host: string; wave: number; slot: number; resumeFrom: PhaseName | null }
    | { type: 'host-phase'; host: string; phase: PhaseName }
    | {
        type: 'host-progress';
        host: string;
        phase: PhaseName | null;
        done: number;
        total: number;
        label?: string;
      }
    | { type: 'host-log'; host: string; message: string }
    | { type: 'host-retry'; host: string; what: string }
    | {
        type: 'host-finished';
        host: string;
        wave: number;
        slot: number;
        outcome: Outcome;
        failed: boolean;
        durationMs: number;
        /** error message, or the refusal reasons */
        detail: string | null;
      }
    /** a host that does not run in this invocation: not started, or kept from an earlier run */
    | { type: 'host-skipped'; host: string; outcome: Outcome; reason: string }
    | { type: 'budget-spent'; failures: number; limit: number }
    | {
        type: 'stopping';
        reason: 'budget' | 'signal' | 'journal';
        signal?: string;
        inFlight: number;
        message: string;
      }
    | { type: 'aborting'; signal: string; inFlight: number; message: string }
    | {
        type: 'run-finished';
        counts: Partial<Record<Outcome, number>>;
        exitCode: number;
        durationMs: number;
        interrupted: boolean;
        failedHostsFile: string;
      }
  );

/** Anything that takes events: the event log, a renderer, a test's array. */
export type EventSink = (event: FleetEvent) => void;

/** A distributive Omit, so each event type keeps its own fields. */
export type FleetEventInput = FleetEvent extends infer E
  ? E extends FleetEvent
    ? Omit<E, 'at'>
    : never
  : never;

export interface EventLog {
  path: string;
  write: EventSink;
  close(): void;
}

/**
 * Opens RUNDIR/events.jsonl for appending, one JSON object per line. Lines go straight to the
 * kernel (a killed process loses none) but are not fsync'd: the journal is the durable record,
 * this is the detailed one.
 */
export function openEventLog(runDir: string): EventLog {
  const path = join(runDir, 'events.jsonl');
  let fd: number | null = openSync(path, 'a');
  return {
    path,
    write(event) {
      if (fd !== null) writeSync(fd, `${JSON.stringify(event)}\n`);
    },
    close() {
      if (fd !== null) closeSync(fd);
      fd = null;
    },
  };
}

export interface ThrottleOptions {
  /** a new line once progress moved by this fraction (0.1 = 10 %) */
  minFraction: number;
  /** or once this long passed since the host's last line */
  minIntervalMs: number;
}

/** At most one line per host per 10 % or per 30 s: enough to see life, not enough to flood CI. */
export const CONSOLE_THROTTLE: ThrottleOptions = { minFraction: 0.1, minIntervalMs: 30_000 };

/** Thins out progress events per host: first, every step of `minFraction`, after a quiet spell, last. */
export class ProgressThrottle {
  private readonly last = new Map<string, { key: string; fraction: number; at: number; complete: boolean }>();

  constructor(
    private readonly options: ThrottleOptions = CONSOLE_THROTTLE,
    private readonly now: () => number = Date.now,
  ) {}

  /** True when this progress event deserves a line. */
  admit(event: Extract<FleetEvent, { type: 'host-progress' }>): boolean {
    const key = `${event.phase ?? ''}\u0000${event.label ?? ''}`;
    const fraction = event.total > 0 ? Math.min(1, event.done / event.total) : 0;
    const complete = event.total > 0 && event.done >= event.total;
    const now = this.now();
    const previous = this.last.get(event.host);
    const admitted =
      previous === undefined ||
      previous.key !== key ||
      (complete && !previous.complete) ||
      fraction - previous.fraction >= this.options.minFraction - 1e-9 ||
      (now - previous.at >= this.options.minIntervalMs && fraction !== previous.fraction);
    if (admitted) this.last.set(event.host, { key, fraction, at: now, complete });
    return admitted;
  }

  /** Forgets a host, so its next phase starts fresh. */
  forget(host: string): void {
    this.last.delete(host);
  }
}

/**
 * Progress values are bytes in the phases that move bytes (payload, upload); elsewhere they are
 * plain counts (e.g. seconds waited for a reboot) and are shown as such.
 */
export function formatAmount(phase: PhaseName | null, done: number, total: number): string {
  if (phase === 'upload' || phase === 'payload')
    return `${formatProgressBytes(done)}/${formatProgressBytes(total)}`;
  return `${done}/${total}`;
}

/** `3 migrated, 1 failed` in the order of the outcome table. */
export function formatCounts(counts: Partial<Record<Outcome, number>>): string {
  const order: Outcome[] = [
    'migrated',
    'ready',
    'reverted',
    'refused',
    'unreachable',
    'failed',
    'needs-attention',
    'not-started',
  ];
  const parts = order.filter((o) => (counts[o] ?? 0) > 0).map((o) => `${counts[o]} ${o}`);
  return parts.length > 0 ? parts.join(', ') : 'no hosts';
}

/** One human line per event; null for events a plain log leaves out. */
export function formatEventLine(event: FleetEvent): string | null {
  switch (event.type) {
    case 'run-started': {
      const waves = event.waveSizes.length > 1 ? `, waves of ${event.waveSizes.join('/')}` : '';
      const budget = event.maxFailures === null ? 'no failure limit' : `max failures ${event.maxFailures}`;
      const kept = event.resumed ? ` (resumed: ${event.hosts - event.toRun} kept)` : '';
      return `${event.command}: ${event.toRun} of ${event.hosts} hosts${kept}${waves}, concurrency ${event.concurrency}, ${budget}; run directory ${event.runDir}`;
    }
    case 'wave-started':
      return `wave ${event.wave}/${event.waves}: ${event.hosts.length} host${event.hosts.length === 1 ? '' : 's'}`;
    case 'wave-finished':
      return `wave ${event.wave}/${event.waves} finished: ${formatCounts(event.counts)}`;
    case 'host-started':
      return `${event.host}: started${event.resumeFrom ? ` (resuming after ${event.resumeFrom})` : ''}`;
    case 'host-phase':
      return `${event.host}: ${event.phase}`;
    case 'host-progress': {
      const percent = event.total > 0 ? Math.floor((100 * event.done) / event.total) : 0;
      const what = event.label ?? event.phase ?? 'progress';
      return `${event.host}: ${what} ${percent}% (${formatAmount(event.phase, event.done, event.total)})`;
    }
    case 'host-log':
      return `${event.host}: ${event.message}`;
    case 'host-retry':
      return `${event.host}: retrying ${event.what}`;
    case 'host-finished':
      return `${event.host}: ${event.outcome} in ${formatProgressDuration(event.durationMs)}${event.detail ? `: ${event.detail}` : ''}`;
    case 'host-skipped':
      return `${event.host}: ${event.outcome}: ${event.reason}`;
    case 'budget-spent':
      return `failure budget spent: ${event.failures} failure${event.failures === 1 ? '' : 's'}, ${event.limit} tolerated`;
    case 'stopping':
    case 'aborting':
      return event.message;
    case 'run-finished': {
      const done = `${event.interrupted ? 'interrupted' : 'finished'} in ${formatProgressDuration(event.durationMs)}: ${formatCounts(event.counts)}`;
      return event.exitCode === 0 ? done : `${done}; hosts to re-run are listed in ${event.failedHostsFile}`;
    }
  }
}

export interface LineSinkOptions {
  /** JSON lines instead of human lines */
  json: boolean;
  write: (line: string) => void;
  throttle?: ThrottleOptions;
  now?: () => number;
}

/** The display for a log or a pipe: one line per event, progress thinned out per host. */
export function createLineSink(options: LineSinkOptions): EventSink {
  const throttle = new ProgressThrottle(options.throttle ?? CONSOLE_THROTTLE, options.now);
  return (event) => {
    if (event.type === 'host-progress' && !throttle.admit(event)) return;
    if (event.type === 'host-finished') throttle.forget(event.host);
    const line = options.json ? JSON.stringify(event) : formatEventLine(event);
    if (line !== null) options.write(`${line}\n`);
  };
}
