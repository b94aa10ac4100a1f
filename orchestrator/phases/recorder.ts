// Builds a host's report while its pipeline runs: every phase gets a start, an end, a
// duration and its error, so the report tells where time went and where things stopped.
import type { Facts } from '../facts/facts.ts';
import type { HostError, HostReport, Outcome, PhaseName, PhaseRecord } from '../report/host-report.ts';

export interface PhaseListener {
  phase(name: PhaseName): void;
}

export class HostRecorder {
  readonly report: HostReport;
  private started = Date.now();

  constructor(
    init: { host: string; address: string; port: number; wave: number | null; command: 'check' | 'run' },
    private readonly listener?: PhaseListener,
  ) {
    this.report = {
      ...init,
      outcome: 'failed',
      failed: true,
      deviceType: null,
      bootManager: null,
      startedAt: new Date().toISOString(),
      endedAt: null,
      durationMs: null,
      phases: [],
      bytesSent: 0,
      retries: 0,
      refusalReasons: [],
      error: null,
      facts: null,
      plan: null,
      stage2Log: null,
    };
  }

  /** Runs one phase, recording its timing and error; the error is rethrown. */
  async phase<T>(name: PhaseName, fn: (record: PhaseRecord) => Promise<T>): Promise<T> {
    const record: PhaseRecord = {
      name,
      startedAt: new Date().toISOString(),
      endedAt: null,
      durationMs: null,
      ok: false,
      retries: 0,
    };
    this.report.phases.push(record);
    this.listener?.phase(name);
    const t0 = Date.now();
    try {
      const value = await fn(record);
      record.ok = true;
      return value;
    } catch (err) {
      record.error = err instanceof Error ? err.message : String(err);
      throw err;
    } finally {
      record.endedAt = new Date().toISOString();
      record.durationMs = Date.now() - t0;
      this.report.retries += record.retries;
    }
  }

  setFacts(facts: Facts): void {
    this.report.facts = facts;
  }

  /** Ends the report in exactly one outcome class. */
  finish(outcome: Outcome, error?: HostError | null): HostReport {
    this.report.outcome = outcome;
    this.report.failed = !(outcome === 'migrated' || outcome === 'ready');
    this.report.error = error ?? null;
    this.report.endedAt = new Date().toISOString();
    this.report.durationMs = Date.now() - this.started;
    return this.report;
  }
}
