// The fleet runner: runs the per-host pipeline over many hosts with a concurrency limit, in
// waves, within a failure budget, and stops gracefully on signals. Everything it does is
// recorded in the run directory (journal.jsonl, events.jsonl, failed-hosts.txt) so a run can
// be watched, resumed after a crash, and its failures re-run.
import { mkdirSync } from 'node:fs';
import pLimit from 'p-limit';
import {
  type EventSink,
  type FleetEvent,
  type FleetEventInput,
  openEventLog,
  ProgressThrottle,
} from '../cli/events.ts';
import { ConfigError, ExitCode } from '../errors.ts';
import type { HostReport, Outcome, PhaseName } from '../report/host-report.ts';
import {
  type JournalRecord,
  type JournalState,
  loadJournal,
  openJournal,
  writeFailedHosts,
} from './journal.ts';
import {
  defaultFailureBudget,
  describeBudget,
  type FailureBudget,
  failureLimit,
  isBudgetSpent,
  planWaves,
  type WaveSpec,
} from './waves.ts';

/** What the per-host pipeline gets from the runner besides its host. */
export interface HostContext {
  /** 1-based wave number (1 when waves are not used) */
  wave: number;
  /**
   * Aborted on the operator's second Ctrl-C (or SIGTERM). The pipeline aborts only the phases
   * that are safe to abort, and returns a report as always.
   */
  signal: AbortSignal;
  /** on a resumed run: the last phase this host entered before, null on a first attempt */
  resumeFrom: PhaseName | null;
  /** on a resumed run: how the previous attempt ended, null if it never finished (a crash) */
  previousOutcome: Outcome | null;
  /** the run directory, for per-host files the pipeline wants to keep */
  runDir: string;
  /**
   * the host entered a phase; journaled before this returns (a kill -9 loses nothing), and
   * fsync'd before it returns for the phases that change the host (apply, reboot, verify, undo)
   */
  phase(name: PhaseName): void;
  /** progress within the current phase; bytes in upload/payload, counts elsewhere */
  progress(done: number, total: number, label?: string): void;
  log(message: string): void;
  /** something is being tried again (a dropped handshake, a flaky transfer) */
  retry(what: string): void;
}

export type RunHost<H> = (host: H, ctx: HostContext) => Promise<HostReport>;

/** What sends SIGINT and SIGTERM: the process, or a stand-in in tests. */
export interface SignalSource {
  on(event: 'SIGINT' | 'SIGTERM', listener: (signal: NodeJS.Signals) => void): unknown;
  off(event: 'SIGINT' | 'SIGTERM', listener: (signal: NodeJS.Signals) => void): unknown;
}

export interface FleetOptions {
  command: 'check' | 'run';
  /**
   * `run` rehearses instead of migrating (mode pretend, or stage2.pretend): its hosts end
   * `ready`, which is then success, not a failure
   */
  rehearsal?: boolean;
  /** hosts in flight at once, within a wave */
  concurrency: number;
  /** null or absent: one wave with every host */
  waves?: WaveSpec | null;
  /** absent: defaultFailureBudget(command) — stop at the first failure for `run` */
  maxFailures?: FailureBudget;
  /** created if missing; holds journal.jsonl, events.jsonl, failed-hosts.txt */
  runDir: string;
  /** the display (TTY bars or log lines); events.jsonl is written whatever this is */
  events?: EventSink;
  /** which reports spend the failure budget; absent: countsAgainstBudget */
  isFailure?: (report: HostReport) => boolean;
  /** continue the run recorded in runDir: keep hosts that already succeeded */
  resume?: boolean;
  /** absent: the process; false: install no handlers */
  signals?: SignalSource | false;
}

export interface FleetOutcome {
  /** one report per host, in the order the hosts were given */
  reports: HostReport[];
  counts: Partial<Record<Outcome, number>>;
  /** reports that spent the failure budget */
  failures: number;
  /** failures tolerated, null for no limit */
  failureLimit: number | null;
  budgetSpent: boolean;
  /** a signal stopped the run (first SIGINT/SIGTERM) */
  interrupted: boolean;
  /** the in-flight hosts were told to abort (second signal) */
  aborted: boolean;
  exitCode: number;
  runDir: string;
  failedHostsFile: string;
  startedAt: string;
  endedAt: string;
  durationMs: number;
}

/**
 * The default failure test. A failure is a host that was touched, or meant to be, and did not
 * come through: failed, unreachable (per our spec: a fleet where hosts stop answering is a
 * fleet with a problem), reverted (stage2 gave up: the image or the device type is likely
 * wrong for the next host too) and needs-attention. Refused does not count: the checks said
 * no before anything changed, which is the safety net working, and a fleet with a few old
 * boards must not stop for them. Not-started hosts never ran.
 */
export function countsAgainstBudget(report: HostReport): boolean {
  return (
    report.outcome === 'failed' ||
    report.outcome === 'unreachable' ||
    report.outcome === 'reverted' ||
    report.outcome === 'needs-attention'
  );
}

/**
 * The outcomes that mean done; anything else goes to failed-hosts.txt and makes the exit code
 * 1. `check` ends hosts `ready`; `run` ends them `migrated`; a rehearsing `run` (pretend,
 * stage2.pretend) ends them `ready`, or `migrated` for a host that already runs balenaOS
 * (nothing to rehearse there).
 */
export function doneOutcomes(command: 'check' | 'run', rehearsal = false): readonly Outcome[] {
  if (command === 'check') return ['ready'];
  return rehearsal ? ['ready', 'migrated'] : ['migrated'];
}

/** Phases from which a host may no longer be as we found it, if the pipeline threw there. */
const UNSAFE_TO_ASSUME: readonly PhaseName[] = ['apply', 'reboot', 'verify', 'undo'];

/** The AbortSignal's reason on the second signal. */
export class FleetAbortError extends Error {
  override name = 'AbortError';
}

function optionalField<T>(host: object, key: string, kind: 'string' | 'number'): T | undefined {
  const value = (host as Record<string, unknown>)[key];
  return typeof value === kind ? (value as T) : undefined;
}

/** A report the runner writes itself: for hosts never started and pipelines that threw. */
function runnerReport(
  host: { name: string },
  command: 'check' | 'run',
  done: readonly Outcome[],
  wave: number | null,
  outcome: Outcome,
  error: HostReport['error'],
  timing: { startedAt: string | null; endedAt: string | null; durationMs: number | null },
): HostReport {
  return {
    host: host.name,
    address:
      optionalField<string>(host, 'address', 'string') ??
      optionalField(host, 'hostname', 'string') ??
      host.name,
    port: optionalField<number>(host, 'port', 'number') ?? 22,
    wave,
    command,
    outcome,
    failed: !done.includes(outcome),
    deviceType: null,
    bootManager: null,
    ...timing,
    phases: [],
    bytesSent: 0,
    retries: 0,
    refusalReasons: [],
    error,
    facts: null,
    plan: null,
    stage2Log: null,
  };
}

/**
 * A pipeline that throws is a bug, not a verdict, but the fleet goes on. Before apply nothing
 * on the host changed, so the host is `failed`; from apply on its state is unknown, so a
 * human must look (`needs-attention`), never a hopeful `failed`.
 */
function reportFromThrow(
  host: { name: string },
  command: 'check' | 'run',
  done: readonly Outcome[],
  wave: number | null,
  error: unknown,
  lastPhase: PhaseName | null,
  timing: { startedAt: string; endedAt: string; durationMs: number },
): HostReport {
  const unknownState = lastPhase !== null && UNSAFE_TO_ASSUME.includes(lastPhase);
  const err = error instanceof Error ? error : new Error(String(error));
  return runnerReport(
    host,
    command,
    done,
    wave,
    unknownState ? 'needs-attention' : 'failed',
    {
      class: err.name || 'Error',
      message: err.message,
      nextStep: unknownState
        ? `the migration stopped unexpectedly during ${lastPhase}: check the host by hand before re-running it`
        : 'nothing was changed on the host; fix the cause and re-run it (it is listed in failed-hosts.txt)',
    },
    timing,
  );
}

function detailOf(report: HostReport): string | null {
  if (report.error) return report.error.message;
  if (report.refusalReasons.length > 0) return report.refusalReasons.join('; ');
  return null;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * Runs `runHost` over `hosts`. A wave starts only when the previous one finished and the
 * failure budget holds. Once the budget is spent, or on the first SIGINT/SIGTERM, no new host
 * starts, hosts in flight finish, and the rest get a `not-started` report; a second signal
 * aborts the signal every in-flight host holds. Never throws for a host's sake.
 */
export async function runFleet<H extends { name: string }>(
  hosts: readonly H[],
  options: FleetOptions,
  runHost: RunHost<H>,
): Promise<FleetOutcome> {
  const { command, runDir, resume = false } = options;
  if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
    throw new ConfigError(
      `concurrency must be a whole number of at least 1, not ${options.concurrency}`,
      undefined,
      'e.g. --concurrency 10',
    );
  }
  const seen = new Set<string>();
  for (const host of hosts) {
    if (seen.has(host.name)) {
      throw new ConfigError(
        `the host name ${host.name} is selected twice`,
        undefined,
        'give every host in the inventory a name of its own',
      );
    }
    seen.add(host.name);
  }

  const startedMs = Date.now();
  const startedAt = new Date(startedMs).toISOString();

  const previous: JournalState = resume ? loadJournal(runDir) : { hosts: new Map(), skippedLines: 0 };
  const done = doneOutcomes(command, options.rehearsal);
  const kept = new Map<string, HostReport>();
  for (const host of hosts) {
    const entry = previous.hosts.get(host.name);
    if (entry?.outcome && done.includes(entry.outcome) && entry.report) kept.set(host.name, entry.report);
  }
  const toRun = hosts.filter((h) => !kept.has(h.name));

  // Waves and the budget are reckoned over the hosts this invocation runs: a resumed run starts
  // its canary again, which is the cautious reading.
  const waveSizes = planWaves(options.waves ?? null, toRun.length);
  const wavesUsed = options.waves != null;
  const budget = options.maxFailures ?? defaultFailureBudget(command);
  const limit = failureLimit(budget, toRun.length);
  const isFailure = options.isFailure ?? countsAgainstBudget;

  mkdirSync(runDir, { recursive: true });
  const eventLog = openEventLog(runDir);
  const journal = openJournal(runDir);
  const fileThrottle = new ProgressThrottle({ minFraction: 0.01, minIntervalMs: 1000 });
  let sinkFailed = false;

  const emit = (input: FleetEventInput): void => {
    const event = { at: new Date().toISOString(), ...input } as FleetEvent;
    // events.jsonl keeps progress at 1 % or 1 s steps per host: every event kind, in every
    // mode, without a multi-gigabyte upload writing a line per chunk.
    if (event.type !== 'host-progress' || fileThrottle.admit(event)) {
      try {
        eventLog.write(event);
      } catch {
        // the display still shows it; the journal is the record that must not fail
      }
    }
    if (event.type === 'host-finished') fileThrottle.forget(event.host);
    if (!options.events) return;
    try {
      options.events(event);
    } catch (error) {
      // A display bug must not take the fleet down with hosts in flight.
      if (!sinkFailed) process.stderr.write(`progress display failed: ${(error as Error).message}\n`);
      sinkFailed = true;
    }
  };

  // ---- stopping: the budget, signals, or a journal that cannot be written
  let stop: { reason: string } | null = null;
  const currentStop = (): { reason: string } | null => stop;
  let budgetSpent = false;
  let interrupted = false;
  let aborted = false;
  let failures = 0;
  let inFlight = 0;
  const controller = new AbortController();

  // Only these wait for their fsync; the others are fsync'd in the background (group commit).
  // A power cut may cost the records of safe phases (a resume redoes those hosts from the
  // start, which is what it would do anyway); never the phases that change a host, nor the
  // outcome of a `run`. `check` changes nothing anywhere: none of its records waits.
  const mustSync = (record: JournalRecord): boolean =>
    command === 'run' &&
    (record.type === 'outcome' || (record.type === 'phase' && UNSAFE_TO_ASSUME.includes(record.phase)));
  const journalAppend = (record: JournalRecord): void => {
    try {
      journal.append(record, { sync: mustSync(record) });
    } catch (error) {
      if (stop === null) {
        stop = { reason: `the journal could not be written (${(error as Error).message})` };
        emit({
          type: 'stopping',
          reason: 'journal',
          inFlight,
          message: `stopping: the journal ${journal.path} cannot be written (${(error as Error).message}); finishing ${plural(inFlight, 'host')} in flight`,
        });
      }
    }
  };

  let signalsSeen = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signalsSeen++;
    if (signalsSeen === 1) {
      interrupted = true;
      if (stop === null) stop = { reason: `the run was stopped by ${signal}` };
      emit({
        type: 'stopping',
        reason: 'signal',
        signal,
        inFlight,
        message: `stopping: finishing ${plural(inFlight, 'host')} in flight; Ctrl-C again to abort what is safe to abort`,
      });
      return;
    }
    if (signalsSeen === 2) {
      aborted = true;
      controller.abort(new FleetAbortError(`aborted by the operator (${signal} twice)`));
      emit({
        type: 'aborting',
        signal,
        inFlight,
        message: `aborting: ${plural(inFlight, 'host')} in flight will stop at the next point where that is safe`,
      });
      return;
    }
    // Further signals change nothing: a host past the point of no return must finish, and
    // killing the runner would only lose its report. kill -9 remains, and resume after it.
    emit({
      type: 'aborting',
      signal,
      inFlight,
      message: `already aborting: waiting for ${plural(inFlight, 'host')} to reach a safe point`,
    });
  };
  const signals = options.signals === false ? null : (options.signals ?? process);
  signals?.on('SIGINT', onSignal);
  signals?.on('SIGTERM', onSignal);

  // ---- slots: which display line a host in flight uses
  const freeSlots: number[] = [];
  let nextSlot = 0;
  const takeSlot = (): number => {
    freeSlots.sort((a, b) => a - b);
    return freeSlots.shift() ?? nextSlot++;
  };

  const reports = new Map<string, HostReport>(kept);
  const counts: Partial<Record<Outcome, number>> = {};
  const count = (outcome: Outcome) => {
    counts[outcome] = (counts[outcome] ?? 0) + 1;
  };

  const skip = (host: H, wave: number, reason: string): HostReport => {
    const report = runnerReport(
      host,
      command,
      done,
      wavesUsed ? wave : null,
      'not-started',
      {
        class: 'NotStarted',
        message: `not started: ${reason}`,
        nextStep: `resume the run (its journal is in ${runDir}) or re-run these hosts with --limit @${runDir}/failed-hosts.txt`,
      },
      { startedAt: null, endedAt: null, durationMs: null },
    );
    reports.set(host.name, report);
    count('not-started');
    emit({ type: 'host-skipped', host: host.name, outcome: 'not-started', reason });
    return report;
  };

  const runOne = async (host: H, wave: number): Promise<void> => {
    if (stop !== null) {
      skip(host, wave, stop.reason);
      return;
    }
    const slot = takeSlot();
    inFlight++;
    const hostStartMs = Date.now();
    const prior = previous.hosts.get(host.name);
    const resumeFrom = prior?.lastPhase ?? null;
    journalAppend({
      type: 'start',
      at: new Date(hostStartMs).toISOString(),
      host: host.name,
      wave,
      resumeFrom,
    });
    emit({ type: 'host-started', host: host.name, wave, slot, resumeFrom });

    let lastPhase: PhaseName | null = null;
    let finished = false;
    const ctx: HostContext = {
      wave,
      signal: controller.signal,
      resumeFrom,
      previousOutcome: prior?.outcome ?? null,
      runDir,
      phase(name) {
        if (finished) return;
        lastPhase = name;
        journalAppend({ type: 'phase', at: new Date().toISOString(), host: host.name, phase: name });
        emit({ type: 'host-phase', host: host.name, phase: name });
      },
      progress(progressDone, total, label) {
        if (finished) return;
        emit({
          type: 'host-progress',
          host: host.name,
          phase: lastPhase,
          done: progressDone,
          total,
          ...(label === undefined ? {} : { label }),
        });
      },
      log(message) {
        if (!finished) emit({ type: 'host-log', host: host.name, message });
      },
      retry(what) {
        if (!finished) emit({ type: 'host-retry', host: host.name, what });
      },
    };

    let report: HostReport;
    try {
      report = await runHost(host, ctx);
      if (typeof report !== 'object' || report === null) {
        throw new TypeError(`the pipeline returned no report for ${host.name}`);
      }
      // The runner owns wave numbers.
      report = { ...report, wave: wavesUsed ? wave : null };
    } catch (error) {
      const endMs = Date.now();
      report = reportFromThrow(host, command, done, wavesUsed ? wave : null, error, lastPhase, {
        startedAt: new Date(hostStartMs).toISOString(),
        endedAt: new Date(endMs).toISOString(),
        durationMs: endMs - hostStartMs,
      });
    }
    finished = true;

    journalAppend({
      type: 'outcome',
      at: new Date().toISOString(),
      host: host.name,
      outcome: report.outcome,
      report,
    });
    inFlight--;
    freeSlots.push(slot);
    reports.set(host.name, report);
    count(report.outcome);
    emit({
      type: 'host-finished',
      host: host.name,
      wave,
      slot,
      outcome: report.outcome,
      failed: report.failed,
      durationMs: Date.now() - hostStartMs,
      detail: detailOf(report),
    });

    if (!isFailure(report)) return;
    failures++;
    if (budgetSpent || !isBudgetSpent(limit, failures)) return;
    budgetSpent = true;
    const tolerated = limit ?? 0;
    emit({ type: 'budget-spent', failures, limit: tolerated });
    if (stop === null) {
      stop = {
        reason: `the failure budget was spent (${plural(failures, 'failure')}, --max-failures ${describeBudget(budget)} tolerates ${tolerated})`,
      };
      emit({
        type: 'stopping',
        reason: 'budget',
        inFlight,
        message: `stopping: failure budget spent (${plural(failures, 'failure')}, ${tolerated} tolerated); finishing ${plural(inFlight, 'host')} in flight`,
      });
    }
  };

  journalAppend({ type: 'run', at: startedAt, command, hosts: hosts.length, resumed: resume });
  emit({
    type: 'run-started',
    runDir,
    command,
    hosts: hosts.length,
    toRun: toRun.length,
    waveSizes,
    concurrency: options.concurrency,
    maxFailures: limit,
    resumed: resume,
  });
  for (const host of hosts) {
    const report = kept.get(host.name);
    if (!report) continue;
    count(report.outcome);
    emit({
      type: 'host-skipped',
      host: host.name,
      outcome: report.outcome,
      reason: 'kept from an earlier attempt of this run',
    });
  }

  try {
    let start = 0;
    for (const [index, size] of waveSizes.entries()) {
      const wave = index + 1;
      const members = toRun.slice(start, start + size);
      start += size;
      // Read through a function: the handlers above change `stop` while this loop awaits.
      const stoppedBy = currentStop();
      if (stoppedBy !== null) {
        for (const host of members) skip(host, wave, stoppedBy.reason);
        continue;
      }
      const before = { ...counts };
      emit({ type: 'wave-started', wave, waves: waveSizes.length, hosts: members.map((h) => h.name) });
      const limiter = pLimit(options.concurrency);
      await Promise.all(members.map((host) => limiter(() => runOne(host, wave))));
      const waveCounts: Partial<Record<Outcome, number>> = {};
      for (const [outcome, n] of Object.entries(counts) as [Outcome, number][]) {
        const delta = n - (before[outcome] ?? 0);
        if (delta > 0) waveCounts[outcome] = delta;
      }
      emit({ type: 'wave-finished', wave, waves: waveSizes.length, counts: waveCounts });
    }
  } finally {
    signals?.off('SIGINT', onSignal);
    signals?.off('SIGTERM', onSignal);
  }

  const ordered = hosts.map((h) => reports.get(h.name)!);
  const failedHostsFile = writeFailedHosts(
    runDir,
    ordered.filter((r) => !done.includes(r.outcome)).map((r) => r.host),
  );
  const endMs = Date.now();
  const everyHostDone = ordered.every((r) => done.includes(r.outcome));
  const notStarted = counts['not-started'] ?? 0;
  // 130 only when the signal left hosts unstarted; a signal that came too late to change
  // anything leaves the usual verdict.
  const exitCode =
    interrupted && notStarted > 0 ? ExitCode.interrupted : everyHostDone ? ExitCode.ok : ExitCode.hostsFailed;
  emit({
    type: 'run-finished',
    counts,
    exitCode,
    durationMs: endMs - startedMs,
    interrupted,
    failedHostsFile,
  });
  journal.close();
  eventLog.close();

  return {
    reports: ordered,
    counts,
    failures,
    failureLimit: limit,
    budgetSpent,
    interrupted,
    aborted,
    exitCode,
    runDir,
    failedHostsFile,
    startedAt,
    endedAt: new Date(endMs).toISOString(),
    durationMs: endMs - startedMs,
  };
}
