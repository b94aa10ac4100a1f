import { afterAll, describe, expect, it } from 'vitest';
import {
  createLineSink,
  type FleetEvent,
  formatCounts,
  formatEventLine,
  ProgressThrottle,
} from '../../orchestrator/cli/events.ts';
import { chooseProgressMode, createProgressDisplay } from '../../orchestrator/cli/progress.ts';
import { runFleet } from '../../orchestrator/fleet/runner.ts';
import { parseMaxFailures, parseWaves } from '../../orchestrator/fleet/waves.ts';
import { formatProgressBytes, formatProgressDuration } from '../../orchestrator/report/format.ts';
import { hostsNamed, removeTempRunDirs, reportFor, tempRunDir } from '../fixtures/fleet/scripted-hosts.ts';

afterAll(removeTempRunDirs);

const at = '2026-11-26T04:50:00.000Z';

function progress(
  host: string,
  done: number,
  total = 1000,
  phase: 'upload' | 'verify' = 'upload',
): FleetEvent {
  return { type: 'host-progress', at, host, phase, done, total };
}

function captureStream(isTTY = false) {
  const chunks: string[] = [];
  return { stream: { isTTY, write: (chunk: string) => chunks.push(chunk) }, text: () => chunks.join('') };
}

describe('the progress throttle', () => {
  it('lets through the first event, every 10 %, and the last, per host', () => {
    const throttle = new ProgressThrottle({ minFraction: 0.1, minIntervalMs: 30_000 }, () => 0);
    const admitted: number[] = [];
    for (let done = 0; done <= 1000; done += 7) {
      if (throttle.admit(progress('a', done) as Extract<FleetEvent, { type: 'host-progress' }>))
        admitted.push(done);
    }
    if (throttle.admit(progress('a', 1000) as Extract<FleetEvent, { type: 'host-progress' }>))
      admitted.push(1000);
    expect(admitted).toEqual([0, 105, 210, 315, 420, 525, 630, 735, 840, 945, 1000]);
  });

  it('lets a slow transfer show life every 30 s even below 10 %', () => {
    let now = 0;
    const throttle = new ProgressThrottle({ minFraction: 0.1, minIntervalMs: 30_000 }, () => now);
    const admit = (done: number) =>
      throttle.admit(progress('a', done) as Extract<FleetEvent, { type: 'host-progress' }>);
    expect(admit(0)).toBe(true);
    now = 10_000;
    expect(admit(10)).toBe(false);
    now = 30_000;
    expect(admit(20)).toBe(true);
    now = 70_000;
    // nothing moved: nothing new to say
    expect(admit(20)).toBe(false);
  });

  it('keeps hosts and phases apart', () => {
    const throttle = new ProgressThrottle({ minFraction: 0.1, minIntervalMs: 30_000 }, () => 0);
    const admit = (e: FleetEvent) => throttle.admit(e as Extract<FleetEvent, { type: 'host-progress' }>);
    expect(admit(progress('a', 500))).toBe(true);
    expect(admit(progress('b', 500))).toBe(true);
    expect(admit(progress('a', 510))).toBe(false);
    expect(admit(progress('a', 3, 300, 'verify'))).toBe(true);
  });
});

describe('line output for logs and pipes', () => {
  it('writes one human line per event and at most one progress line per host per 10 %', () => {
    const { stream, text } = captureStream();
    const display = createProgressDisplay({ stream, now: () => 0 });
    expect(display.mode).toBe('plain');
    display.sink({ type: 'host-started', at, host: 'nuc-1', wave: 1, slot: 0, resumeFrom: null });
    display.sink({ type: 'host-phase', at, host: 'nuc-1', phase: 'upload' });
    for (let done = 0; done <= 100 * 1024 * 1024; done += 1024 * 1024) {
      display.sink({
        type: 'host-progress',
        at,
        host: 'nuc-1',
        phase: 'upload',
        done,
        total: 100 * 1024 * 1024,
      });
    }
    display.sink({
      type: 'host-finished',
      at,
      host: 'nuc-1',
      wave: 1,
      slot: 0,
      outcome: 'migrated',
      failed: false,
      durationMs: 83_000,
      detail: null,
    });
    const lines = text().trimEnd().split('\n');
    expect(lines[0]).toBe('nuc-1: started');
    expect(lines[1]).toBe('nuc-1: upload');
    const progressLines = lines.filter((l) => l.includes('%'));
    expect(progressLines).toHaveLength(11);
    expect(progressLines[0]).toBe('nuc-1: upload 0% (0 B/100.0 MiB)');
    expect(progressLines.at(-1)).toBe('nuc-1: upload 100% (100.0 MiB/100.0 MiB)');
    expect(lines.at(-1)).toBe('nuc-1: migrated in 1m23s');
    expect(text()).not.toContain('\u001b[');
  });

  it('writes JSON lines with --json, throttled the same way', () => {
    const { stream, text } = captureStream(true);
    const display = createProgressDisplay({ stream, json: true, now: () => 0 });
    expect(display.mode).toBe('json');
    for (let done = 0; done <= 100; done++) display.sink(progress('pi-4', done, 100));
    const events = text()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(events).toHaveLength(11);
    expect(events[10]).toEqual({
      type: 'host-progress',
      at,
      host: 'pi-4',
      phase: 'upload',
      done: 100,
      total: 100,
    });
  });

  it('prints a whole fleet run as a readable log, from start to summary', async () => {
    const { stream, text } = captureStream();
    const runDir = tempRunDir('lines');
    const display = createProgressDisplay({ stream });
    await runFleet(
      hostsNamed(4),
      {
        command: 'run',
        concurrency: 1,
        runDir,
        waves: parseWaves('1,100%'),
        maxFailures: parseMaxFailures('0'),
        signals: false,
        events: display.sink,
      },
      async (host, ctx) => {
        ctx.phase('connect');
        if (host.name === 'host-02')
          return reportFor(host, 'unreachable', ctx.wave, 'connect ETIMEDOUT 10.0.0.2:22');
        ctx.phase('upload');
        ctx.progress(512, 1024);
        ctx.retry('sftp write');
        ctx.log('payload verified');
        return reportFor(host, 'migrated', ctx.wave);
      },
    );
    const lines = text()
      .trimEnd()
      .split('\n')
      .map((l) => l.replace(/in \d+\.\ds/, 'in Ts'));
    expect(lines).toEqual([
      `run: 4 of 4 hosts, waves of 1/3, concurrency 1, max failures 0; run directory ${runDir}`,
      'wave 1/2: 1 host',
      'host-01: started',
      'host-01: connect',
      'host-01: upload',
      'host-01: upload 50% (512 B/1.0 KiB)',
      'host-01: retrying sftp write',
      'host-01: payload verified',
      'host-01: migrated in Ts',
      'wave 1/2 finished: 1 migrated',
      'wave 2/2: 3 hosts',
      'host-02: started',
      'host-02: connect',
      'host-02: unreachable in Ts: connect ETIMEDOUT 10.0.0.2:22',
      'failure budget spent: 1 failure, 0 tolerated',
      'stopping: failure budget spent (1 failure, 0 tolerated); finishing 0 hosts in flight',
      'host-03: not-started: the failure budget was spent (1 failure, --max-failures 0 tolerates 0)',
      'host-04: not-started: the failure budget was spent (1 failure, --max-failures 0 tolerates 0)',
      'wave 2/2 finished: 1 unreachable, 2 not-started',
      `finished in Ts: 1 migrated, 1 unreachable, 2 not-started; hosts to re-run are listed in ${runDir}/failed-hosts.txt`,
    ]);
  });
});

describe('choosing the display', () => {
  it('draws bars only on a terminal that can move its cursor', () => {
    expect(chooseProgressMode({ write: () => true, isTTY: true }, false, {})).toBe('tty');
    expect(chooseProgressMode({ write: () => true, isTTY: true }, false, { TERM: 'dumb' })).toBe('plain');
    expect(chooseProgressMode({ write: () => true }, false, {})).toBe('plain');
    expect(chooseProgressMode({ write: () => true, isTTY: true }, true, {})).toBe('json');
  });
});

describe('formatting', () => {
  it('shows durations, sizes and counts the way an operator reads them', () => {
    expect(formatProgressDuration(430)).toBe('0.4s');
    expect(formatProgressDuration(42_000)).toBe('42s');
    expect(formatProgressDuration(185_000)).toBe('3m05s');
    expect(formatProgressDuration(3_725_000)).toBe('1h02m');
    expect(formatProgressBytes(512)).toBe('512 B');
    expect(formatProgressBytes(1536 * 1024)).toBe('1.5 MiB');
    expect(formatCounts({ failed: 1, migrated: 3 })).toBe('3 migrated, 1 failed');
    expect(formatCounts({})).toBe('no hosts');
  });

  it('keeps one decimal on the live display where a report would switch units or drop it', () => {
    expect(formatProgressDuration(0)).toBe('0.0s');
    expect(formatProgressDuration(9_999)).toBe('10.0s');
    expect(formatProgressDuration(10_000)).toBe('10s');
    expect(formatProgressDuration(59_499)).toBe('59s');
    expect(formatProgressDuration(59_500)).toBe('1m00s');
    expect(formatProgressDuration(3_599_499)).toBe('59m59s');
    expect(formatProgressDuration(3_599_500)).toBe('1h00m');
    expect(formatProgressDuration(3_630_000)).toBe('1h00m');
    expect(formatProgressBytes(0)).toBe('0 B');
    expect(formatProgressBytes(1023)).toBe('1023 B');
    expect(formatProgressBytes(1024)).toBe('1.0 KiB');
    expect(formatProgressBytes(640 * 2 ** 20)).toBe('640.0 MiB');
    expect(formatProgressBytes(2 ** 50)).toBe('1024.0 TiB');
  });

  it('says how a resumed run started', () => {
    const line = formatEventLine({
      type: 'run-started',
      at,
      runDir: 'runs/x',
      command: 'run',
      hosts: 10,
      toRun: 4,
      waveSizes: [4],
      concurrency: 8,
      maxFailures: null,
      resumed: true,
    });
    expect(line).toBe(
      'run: 4 of 10 hosts (resumed: 6 kept), concurrency 8, no failure limit; run directory runs/x',
    );
  });

  it('keeps a line sink quiet about nothing: every line ends with a newline', () => {
    const lines: string[] = [];
    const sink = createLineSink({ json: false, write: (l) => lines.push(l) });
    sink({ type: 'host-log', at, host: 'a', message: 'hello' });
    expect(lines).toEqual(['a: hello\n']);
  });
});
