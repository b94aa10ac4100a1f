import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FleetEvent } from '../../orchestrator/cli/events.ts';
import { ConfigError, ExitCode } from '../../orchestrator/errors.ts';
import { countsAgainstBudget, type FleetOptions, runFleet } from '../../orchestrator/fleet/runner.ts';
import { parseMaxFailures, parseWaves } from '../../orchestrator/fleet/waves.ts';
import {
  deferred,
  hostsNamed,
  removeTempRunDirs,
  reportFor,
  type ScriptedHost,
  scriptedRunHost,
  sleep,
  tempRunDir,
} from '../fixtures/fleet/scripted-hosts.ts';

afterAll(removeTempRunDirs);

function options(overrides: Partial<FleetOptions> = {}): FleetOptions & { seen: FleetEvent[] } {
  const seen: FleetEvent[] = [];
  return {
    command: 'run',
    concurrency: 4,
    runDir: tempRunDir(),
    maxFailures: { kind: 'unlimited' },
    signals: false,
    events: (e) => seen.push(e),
    ...overrides,
    seen,
  };
}

function eventsOfType<T extends FleetEvent['type']>(events: FleetEvent[], type: T) {
  return events.filter((e): e is Extract<FleetEvent, { type: T }> => e.type === type);
}

describe('runFleet concurrency', () => {
  it('never has more hosts in flight than the concurrency, and uses all of it', async () => {
    const hosts = hostsNamed(20);
    const { runHost, tracker } = scriptedRunHost(() => ({ ms: 15 }));
    const outcome = await runFleet(hosts, options({ concurrency: 3 }), runHost);
    expect(tracker.maxInFlight).toBe(3);
    expect(tracker.started).toHaveLength(20);
    expect(outcome.counts).toEqual({ migrated: 20 });
    expect(outcome.exitCode).toBe(ExitCode.ok);
  });

  it('gives every host in flight a display slot below the concurrency', async () => {
    const opts = options({ concurrency: 3 });
    const { runHost } = scriptedRunHost((h) => ({ ms: 5 + (Number(h.name.slice(-2)) % 4) * 5 }));
    await runFleet(hostsNamed(12), opts, runHost);
    const slots = eventsOfType(opts.seen, 'host-started').map((e) => e.slot);
    expect(Math.max(...slots)).toBe(2);
    expect(Math.min(...slots)).toBe(0);
  });

  it('returns the reports in the order the hosts were given, whatever order they finished in', async () => {
    const hosts = hostsNamed(5);
    const { runHost } = scriptedRunHost((h) => ({ ms: 50 - Number(h.name.slice(-2)) * 8 }));
    const outcome = await runFleet(hosts, options({ concurrency: 5 }), runHost);
    expect(outcome.reports.map((r) => r.host)).toEqual(hosts.map((h) => h.name));
  });
});

describe('runFleet waves', () => {
  it('runs waves in order and starts a wave only after the previous one finished', async () => {
    const hosts = hostsNamed(10);
    const opts = options({ concurrency: 10, waves: parseWaves('1,30%,100%') });
    const { runHost } = scriptedRunHost((h) => ({ ms: h.name === 'host-01' ? 60 : 10 }));
    const outcome = await runFleet(hosts, opts, runHost);

    const order = opts.seen
      .filter((e) => ['wave-started', 'wave-finished', 'host-started', 'host-finished'].includes(e.type))
      .map((e) => ('host' in e ? `${e.type}:${e.host}` : `${e.type}:${(e as { wave: number }).wave}`));
    expect(order.slice(0, 4)).toEqual([
      'wave-started:1',
      'host-started:host-01',
      'host-finished:host-01',
      'wave-finished:1',
    ]);
    const wave2Start = order.indexOf('wave-started:2');
    const wave2End = order.indexOf('wave-finished:2');
    const wave3Start = order.indexOf('wave-started:3');
    expect(order.slice(wave2Start + 1, wave2End).filter((x) => x.startsWith('host-started'))).toHaveLength(2);
    expect(wave3Start).toBeGreaterThan(wave2End);
    expect(eventsOfType(opts.seen, 'wave-started').map((e) => e.hosts.length)).toEqual([1, 2, 7]);
    expect(outcome.reports.map((r) => r.wave)).toEqual([1, 2, 2, 3, 3, 3, 3, 3, 3, 3]);
  });

  it('tells each host its wave, and leaves the report wave empty when no waves are used', async () => {
    const { runHost, tracker } = scriptedRunHost(() => ({ ms: 1 }));
    const outcome = await runFleet(hostsNamed(2), options(), runHost);
    expect([...tracker.contexts.values()].map((c) => c.wave)).toEqual([1, 1]);
    expect(outcome.reports.map((r) => r.wave)).toEqual([null, null]);
  });

  it('does not start the next wave once the budget is spent in the canary', async () => {
    const hosts = hostsNamed(6);
    const opts = options({ waves: parseWaves('1,100%'), maxFailures: parseMaxFailures('0') });
    const { runHost, tracker } = scriptedRunHost(() => ({ outcome: 'failed' }));
    const outcome = await runFleet(hosts, opts, runHost);
    expect(tracker.started).toEqual(['host-01']);
    expect(eventsOfType(opts.seen, 'wave-started')).toHaveLength(1);
    expect(outcome.counts).toEqual({ failed: 1, 'not-started': 5 });
    expect(outcome.reports[3]).toMatchObject({ outcome: 'not-started', wave: 2, failed: true });
  });
});

describe('runFleet failure budget', () => {
  it('stops starting hosts once spent, lets hosts in flight finish, and lists the rest as not-started', async () => {
    const hosts = hostsNamed(12);
    const spent = deferred();
    const opts = options({ concurrency: 3, maxFailures: parseMaxFailures('1') });
    const seen = opts.events!;
    opts.events = (e) => {
      seen(e);
      if (e.type === 'budget-spent') spent.resolve();
    };
    // host-02 and host-04 fail at once; everything else ends only after the budget is spent.
    const { runHost, tracker } = scriptedRunHost((h) =>
      h.name === 'host-02' || h.name === 'host-04'
        ? { ms: 1, outcome: 'failed' }
        : { ms: 1, gate: spent.promise },
    );
    const outcome = await runFleet(hosts, opts, runHost);

    // host-02 fails (tolerated), host-04 takes its slot and fails: budget spent with
    // host-01 and host-03 still in flight.
    expect(outcome.budgetSpent).toBe(true);
    expect(outcome.failures).toBe(2);
    expect(tracker.started).toEqual(['host-01', 'host-02', 'host-03', 'host-04']);
    // the hosts in flight when it was spent finished normally
    expect(outcome.reports.find((r) => r.host === 'host-01')?.outcome).toBe('migrated');
    expect(outcome.reports.find((r) => r.host === 'host-03')?.outcome).toBe('migrated');
    const notStarted = outcome.reports.filter((r) => r.outcome === 'not-started');
    expect(notStarted.map((r) => r.host)).toEqual(hosts.slice(4).map((h) => h.name));
    expect(notStarted[0]?.error?.message).toBe(
      'not started: the failure budget was spent (2 failures, --max-failures 1 tolerates 1)',
    );
    expect(notStarted[0]).toMatchObject({ address: '10.0.0.5', port: 22, startedAt: null, phases: [] });
    expect(outcome.exitCode).toBe(ExitCode.hostsFailed);

    const stopping = eventsOfType(opts.seen, 'stopping');
    expect(stopping).toHaveLength(1);
    expect(stopping[0]).toMatchObject({ reason: 'budget', inFlight: 2 });
    expect(stopping[0]?.message).toBe(
      'stopping: failure budget spent (2 failures, 1 tolerated); finishing 2 hosts in flight',
    );
    expect(eventsOfType(opts.seen, 'budget-spent')).toEqual([
      expect.objectContaining({ failures: 2, limit: 1 }),
    ]);
  });

  it('reckons a percentage budget over the hosts of the run', async () => {
    const hosts = hostsNamed(20);
    // 10% of 20 tolerates 2 failures; hosts 01-05 fail, one at a time.
    const { runHost, tracker } = scriptedRunHost((h) =>
      Number(h.name.slice(-2)) <= 5 ? { ms: 2, outcome: 'unreachable' } : { ms: 2 },
    );
    const outcome = await runFleet(
      hosts,
      options({ concurrency: 1, maxFailures: parseMaxFailures('10%') }),
      runHost,
    );
    expect(outcome.failureLimit).toBe(2);
    expect(tracker.started).toEqual(['host-01', 'host-02', 'host-03']);
    expect(outcome.counts).toEqual({ unreachable: 3, 'not-started': 17 });
  });

  it('stops a run at its first failure when no budget is given', async () => {
    const { runHost, tracker } = scriptedRunHost((h) => (h.name === 'host-01' ? { outcome: 'failed' } : {}));
    const { maxFailures: _, ...rest } = options({ concurrency: 1 });
    const outcome = await runFleet(hostsNamed(4), rest, runHost);
    expect(outcome.failureLimit).toBe(0);
    expect(tracker.started).toEqual(['host-01']);
    expect(outcome.counts).toEqual({ failed: 1, 'not-started': 3 });
  });

  it('does not spend the budget on refused hosts: nothing was changed on them', async () => {
    const { runHost } = scriptedRunHost((h) => (Number(h.name.slice(-2)) % 2 ? { outcome: 'refused' } : {}));
    const outcome = await runFleet(
      hostsNamed(6),
      options({ concurrency: 2, maxFailures: parseMaxFailures('0') }),
      runHost,
    );
    expect(outcome.budgetSpent).toBe(false);
    expect(outcome.counts).toEqual({ refused: 3, migrated: 3 });
    expect(outcome.exitCode).toBe(ExitCode.hostsFailed);
  });

  it('counts failed, unreachable, reverted and needs-attention against the budget, and nothing else', () => {
    const host = hostsNamed(1)[0]!;
    const counted = (
      [
        'migrated',
        'ready',
        'refused',
        'not-started',
        'failed',
        'unreachable',
        'reverted',
        'needs-attention',
      ] as const
    ).filter((o) => countsAgainstBudget(reportFor(host, o)));
    expect(counted).toEqual(['failed', 'unreachable', 'reverted', 'needs-attention']);
  });

  it('lets the caller decide what a failure is', async () => {
    const { runHost, tracker } = scriptedRunHost(() => ({ outcome: 'refused' }));
    const outcome = await runFleet(
      hostsNamed(3),
      options({
        concurrency: 1,
        maxFailures: parseMaxFailures('0'),
        isFailure: (r) => r.outcome === 'refused',
      }),
      runHost,
    );
    expect(tracker.started).toEqual(['host-01']);
    expect(outcome.budgetSpent).toBe(true);
  });
});

describe('runFleet when the pipeline throws', () => {
  it('turns a throw before apply into a failed report and carries on with the fleet', async () => {
    const { runHost } = scriptedRunHost((h) =>
      h.name === 'host-02' ? { phases: ['connect', 'probe'], throws: 'probe parser exploded' } : {},
    );
    const outcome = await runFleet(hostsNamed(3), options(), runHost);
    const report = outcome.reports[1]!;
    expect(report).toMatchObject({ host: 'host-02', outcome: 'failed', failed: true, address: '10.0.0.2' });
    expect(report.error).toMatchObject({ class: 'Error', message: 'probe parser exploded' });
    expect(report.error?.nextStep).toContain('nothing was changed on the host');
    expect(report.durationMs).toBeGreaterThanOrEqual(0);
    expect(outcome.counts).toEqual({ migrated: 2, failed: 1 });
  });

  it('turns a throw from apply on into needs-attention: the host state is unknown', async () => {
    const { runHost } = scriptedRunHost(() => ({
      phases: ['connect', 'upload', 'apply'],
      throws: 'socket gone',
    }));
    const outcome = await runFleet(hostsNamed(1), options(), runHost);
    expect(outcome.reports[0]).toMatchObject({ outcome: 'needs-attention' });
    expect(outcome.reports[0]?.error?.nextStep).toContain('during apply: check the host by hand');
  });

  it('treats a thrown non-error and a missing report as failures too', async () => {
    const outcome = await runFleet(hostsNamed(2), options(), async (host) => {
      if (host.name === 'host-01') throw 'a string';
      return undefined as never;
    });
    expect(outcome.reports.map((r) => [r.outcome, r.error?.message])).toEqual([
      ['failed', 'a string'],
      ['failed', 'the pipeline returned no report for host-02'],
    ]);
  });

  it('keeps running when the display throws', async () => {
    const { runHost } = scriptedRunHost(() => ({}));
    const stderr = process.stderr.write;
    process.stderr.write = (() => true) as typeof process.stderr.write;
    try {
      const outcome = await runFleet(
        hostsNamed(3),
        options({
          events: () => {
            throw new Error('bad renderer');
          },
        }),
        runHost,
      );
      expect(outcome.counts).toEqual({ migrated: 3 });
    } finally {
      process.stderr.write = stderr;
    }
  });
});

describe('runFleet input checks', () => {
  it('refuses two hosts with the same name: the journal keys on names', async () => {
    const hosts = [...hostsNamed(2), { name: 'host-01' }];
    await expect(runFleet(hosts, options(), async (h) => reportFor(h, 'migrated'))).rejects.toThrow(
      ConfigError,
    );
  });

  it('refuses a concurrency below one', async () => {
    await expect(
      runFleet(hostsNamed(1), options({ concurrency: 0 }), async (h) => reportFor(h, 'migrated')),
    ).rejects.toThrow('concurrency must be a whole number of at least 1');
  });

  it('finishes an empty selection at once with an empty failed-hosts.txt', async () => {
    const outcome = await runFleet([], options(), async () => {
      throw new Error('never called');
    });
    expect(outcome.exitCode).toBe(ExitCode.ok);
    expect(readFileSync(outcome.failedHostsFile, 'utf8')).toBe('');
  });
});

describe('runFleet signals', () => {
  it('on the first SIGINT starts no new host, finishes the ones in flight, and marks the rest not-started', async () => {
    const signals = new EventEmitter();
    const release = deferred();
    const opts = options({ concurrency: 2, signals });
    const seen = opts.events!;
    opts.events = (e) => {
      seen(e);
      if (e.type === 'host-started' && e.host === 'host-02') {
        signals.emit('SIGINT', 'SIGINT');
        release.resolve();
      }
    };
    const { runHost, tracker } = scriptedRunHost(() => ({ ms: 5, gate: release.promise }));
    const outcome = await runFleet(hostsNamed(6), opts, runHost);

    expect(tracker.started).toEqual(['host-01', 'host-02']);
    expect(outcome.counts).toEqual({ migrated: 2, 'not-started': 4 });
    expect(outcome.interrupted).toBe(true);
    expect(outcome.aborted).toBe(false);
    expect(outcome.exitCode).toBe(ExitCode.interrupted);
    expect(outcome.reports[2]?.error?.message).toBe('not started: the run was stopped by SIGINT');
    expect(eventsOfType(opts.seen, 'stopping')[0]?.message).toBe(
      'stopping: finishing 2 hosts in flight; Ctrl-C again to abort what is safe to abort',
    );
    expect(tracker.contexts.get('host-01')?.signal.aborted).toBe(false);
    expect(signals.listenerCount('SIGINT')).toBe(0);
    expect(signals.listenerCount('SIGTERM')).toBe(0);
  });

  it('on a second signal aborts the signal every host in flight holds', async () => {
    const signals = new EventEmitter();
    const opts = options({ concurrency: 2, signals });
    const seen = opts.events!;
    opts.events = (e) => {
      seen(e);
      // both hosts are in their upload: Ctrl-C, then Ctrl-C again
      if (e.type === 'host-phase' && e.host === 'host-02') {
        signals.emit('SIGTERM', 'SIGTERM');
        setTimeout(() => signals.emit('SIGINT', 'SIGINT'), 5);
      }
    };
    const abortedHosts: string[] = [];
    const outcome = await runFleet(hostsNamed(5), opts, async (host, ctx) => {
      ctx.phase('upload');
      try {
        await sleep(5_000, ctx.signal);
        return reportFor(host, 'migrated');
      } catch (reason) {
        abortedHosts.push(`${host.name}: ${(reason as Error).name}: ${(reason as Error).message}`);
        return reportFor(host, 'failed', ctx.wave, 'aborted by the operator during upload');
      }
    });

    expect(abortedHosts).toEqual([
      'host-01: AbortError: aborted by the operator (SIGINT twice)',
      'host-02: AbortError: aborted by the operator (SIGINT twice)',
    ]);
    expect(outcome.aborted).toBe(true);
    expect(outcome.counts).toEqual({ failed: 2, 'not-started': 3 });
    expect(eventsOfType(opts.seen, 'aborting')[0]?.message).toBe(
      'aborting: 2 hosts in flight will stop at the next point where that is safe',
    );
  });
});

describe('runFleet run directory', () => {
  it('writes failed-hosts.txt with every host that did not migrate, one per line', async () => {
    const script: Record<string, ScriptedHost> = {
      'host-02': { outcome: 'failed' },
      'host-03': { outcome: 'refused' },
      'host-05': { outcome: 'needs-attention' },
    };
    const { runHost } = scriptedRunHost((h) => script[h.name] ?? {});
    const outcome = await runFleet(hostsNamed(5), options({ concurrency: 1 }), runHost);
    expect(outcome.failedHostsFile).toBe(join(outcome.runDir, 'failed-hosts.txt'));
    expect(readFileSync(outcome.failedHostsFile, 'utf8')).toBe('host-02\nhost-03\nhost-05\n');
  });

  it('lists ready hosts as done for a check', async () => {
    const { runHost } = scriptedRunHost((h) => ({ outcome: h.name === 'host-01' ? 'ready' : 'refused' }));
    const outcome = await runFleet(
      hostsNamed(2),
      { ...options(), command: 'check', maxFailures: undefined },
      runHost,
    );
    expect(readFileSync(outcome.failedHostsFile, 'utf8')).toBe('host-02\n');
    expect(outcome.failureLimit).toBeNull();
  });

  it('counts ready as done for a run that rehearses (pretend, stage2.pretend): exit 0, no failed hosts', async () => {
    // host-03 already runs balenaOS: a rehearsing run reports it migrated, which is done too
    const { runHost } = scriptedRunHost((h) => ({ outcome: h.name === 'host-03' ? 'migrated' : 'ready' }));
    const outcome = await runFleet(hostsNamed(3), options({ rehearsal: true }), runHost);
    expect(outcome.counts).toEqual({ ready: 2, migrated: 1 });
    expect(outcome.exitCode).toBe(ExitCode.ok);
    expect(readFileSync(outcome.failedHostsFile, 'utf8')).toBe('');
  });

  it('still lists every host but the refused one as failed in a rehearsing run', async () => {
    const { runHost } = scriptedRunHost((h) => ({ outcome: h.name === 'host-02' ? 'refused' : 'ready' }));
    const outcome = await runFleet(hostsNamed(2), options({ rehearsal: true }), runHost);
    expect(outcome.exitCode).toBe(ExitCode.hostsFailed);
    expect(readFileSync(outcome.failedHostsFile, 'utf8')).toBe('host-02\n');
  });

  it('does not count ready as migrated for a run that migrates', async () => {
    const { runHost } = scriptedRunHost(() => ({ outcome: 'ready' }));
    const outcome = await runFleet(hostsNamed(2), options(), runHost);
    expect(outcome.exitCode).toBe(ExitCode.hostsFailed);
    expect(readFileSync(outcome.failedHostsFile, 'utf8')).toBe('host-01\nhost-02\n');
  });

  it('marks a runner-made report of a rehearsing run failed unless it is ready', async () => {
    const { runHost } = scriptedRunHost((h) =>
      h.name === 'host-01' ? { throws: 'boom' } : { outcome: 'ready' },
    );
    const outcome = await runFleet(hostsNamed(2), options({ rehearsal: true }), runHost);
    expect(outcome.reports.map((r) => [r.host, r.outcome, r.failed])).toEqual([
      ['host-01', 'failed', true],
      ['host-02', 'ready', false],
    ]);
  });

  it('keeps the ready hosts of a rehearsing run on resume, and runs the others again', async () => {
    const runDir = tempRunDir();
    const first = scriptedRunHost((h) => ({ outcome: h.name === 'host-01' ? 'ready' : 'failed' }));
    await runFleet(hostsNamed(2), options({ runDir, rehearsal: true }), first.runHost);
    const again = scriptedRunHost(() => ({ outcome: 'ready' }));
    const opts = options({ runDir, rehearsal: true, resume: true });
    const outcome = await runFleet(hostsNamed(2), opts, again.runHost);
    expect(again.tracker.started).toEqual(['host-02']);
    expect(outcome.counts).toEqual({ ready: 2 });
    expect(eventsOfType(opts.seen, 'host-skipped').map((e) => [e.host, e.outcome])).toEqual([
      ['host-01', 'ready'],
    ]);
    expect(outcome.exitCode).toBe(ExitCode.ok);
  });

  it('writes every kind of event to events.jsonl, whatever the display', async () => {
    const opts = options({
      concurrency: 1,
      maxFailures: parseMaxFailures('0'),
      waves: parseWaves('1,100%'),
      events: undefined,
    });
    const outcome = await runFleet(hostsNamed(3), opts, async (host, ctx) => {
      ctx.phase('upload');
      for (let done = 0; done <= 1000; done += 1) ctx.progress(done, 1000, 'image');
      ctx.log('uploaded');
      ctx.retry('handshake');
      return reportFor(host, host.name === 'host-02' ? 'failed' : 'migrated', ctx.wave);
    });
    const lines = readFileSync(join(outcome.runDir, 'events.jsonl'), 'utf8').trim().split('\n');
    const events = lines.map((l) => JSON.parse(l) as FleetEvent);
    const types = new Set(events.map((e) => e.type));
    for (const type of [
      'run-started',
      'wave-started',
      'host-started',
      'host-phase',
      'host-progress',
      'host-log',
      'host-retry',
      'host-finished',
      'wave-finished',
      'budget-spent',
      'stopping',
      'host-skipped',
      'run-finished',
    ]) {
      expect(types, type).toContain(type);
    }
    // progress reaches the file in steps of at least 1 %, ending at 100 %
    const progress = events.filter((e) => e.type === 'host-progress' && e.host === 'host-01');
    expect(progress.length).toBeLessThanOrEqual(102);
    expect(progress.at(-1)).toMatchObject({ done: 1000, total: 1000, phase: 'upload', label: 'image' });
    expect(events.every((e) => typeof e.at === 'string')).toBe(true);
    expect(events.at(-1)).toMatchObject({ type: 'run-finished', exitCode: 1 });
  });

  it.skipIf(!existsSync('/dev/full'))(
    'stops starting hosts when the journal cannot be written, since the run could not be resumed',
    async () => {
      const opts = options({ concurrency: 1 });
      mkdirSync(opts.runDir, { recursive: true });
      symlinkSync('/dev/full', join(opts.runDir, 'journal.jsonl'));
      const { runHost, tracker } = scriptedRunHost(() => ({}));
      const outcome = await runFleet(hostsNamed(3), opts, runHost);
      expect(tracker.started).toEqual([]);
      expect(outcome.counts).toEqual({ 'not-started': 3 });
      expect(outcome.reports[0]?.error?.message).toMatch(
        /^not started: the journal could not be written \(ENOSPC/,
      );
      expect(eventsOfType(opts.seen, 'stopping')[0]).toMatchObject({ reason: 'journal' });
    },
  );

  it('ignores what a host reports after it finished', async () => {
    const opts = options();
    let late: (() => void) | undefined;
    await runFleet(hostsNamed(1), opts, async (host, ctx) => {
      late = () => {
        ctx.phase('verify');
        ctx.log('too late');
      };
      return reportFor(host, 'migrated');
    });
    const before = opts.seen.length;
    late?.();
    expect(opts.seen.length).toBe(before);
  });
});
