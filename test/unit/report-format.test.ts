import { describe, expect, it } from 'vitest';
import {
  countOutcomes,
  formatBytes,
  formatDuration,
  formatTimestamp,
  logTail,
  nextStepFor,
  OUTCOME_ORDER,
  oneLine,
  reasonLine,
  sortHostsProblemsFirst,
} from '../../orchestrator/report/format.ts';
import { OUTCOMES } from '../../orchestrator/report/host-report.ts';
import { hostReport, runFleet } from '../fixtures/reports/fleet.ts';

describe('report formatting helpers', () => {
  it('orders every outcome exactly once, with needs-attention first and the done outcomes last', () => {
    expect([...OUTCOME_ORDER].sort()).toEqual([...OUTCOMES].sort());
    expect(OUTCOME_ORDER[0]).toBe('needs-attention');
    expect(OUTCOME_ORDER.slice(-2)).toEqual(['ready', 'migrated']);
  });

  it('sorts problems first and host names in natural order within an outcome', () => {
    const sorted = sortHostsProblemsFirst(runFleet().hosts).map((h) => `${h.outcome}:${h.host}`);
    expect(sorted.slice(0, 3)).toEqual(['needs-attention:win-lab-2', 'failed:nuc-05', 'reverted:bbb-07']);
    expect(sorted.slice(-4)).toEqual([
      'migrated:nuc-01',
      'migrated:nuc-02',
      'migrated:pi-3',
      'migrated:pi-10',
    ]);
  });

  it('counts hosts per outcome and leaves out outcomes nobody reached', () => {
    expect(countOutcomes(runFleet().hosts)).toEqual({
      migrated: 4,
      reverted: 1,
      failed: 1,
      'needs-attention': 1,
      unreachable: 2,
      refused: 2,
      'not-started': 1,
    });
  });

  it('formats durations compactly and shows a dash when the duration is unknown', () => {
    expect(formatDuration(null)).toBe('-');
    expect(formatDuration(850)).toBe('850ms');
    expect(formatDuration(12_345)).toBe('12.3s');
    expect(formatDuration(59_990)).toBe('1m00s');
    expect(formatDuration(245_000)).toBe('4m05s');
    expect(formatDuration(3_725_000)).toBe('1h02m');
  });

  it('rounds durations of an hour or more to the nearest minute', () => {
    expect(formatDuration(3_599_499)).toBe('59m59s');
    expect(formatDuration(3_599_500)).toBe('1h00m');
    expect(formatDuration(3_630_000)).toBe('1h01m');
  });

  it('formats byte counts with binary prefixes', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(3.4 * 2 ** 20)).toBe('3.4 MiB');
    expect(formatBytes(640 * 2 ** 20)).toBe('640 MiB');
    expect(formatBytes(1.1 * 2 ** 30)).toBe('1.1 GiB');
    expect(formatBytes(1023.6)).toBe('1024 B');
    expect(formatBytes(2 ** 50)).toBe('1.0 PiB');
    expect(formatBytes(null)).toBe('-');
  });

  it('gives the refusal reasons as the reason line of a refused host', () => {
    const h = hostReport({
      host: 'a',
      outcome: 'refused',
      refusalReasons: ['disk too small', 'secure boot on'],
    });
    expect(reasonLine(h)).toBe('disk too small; secure boot on');
  });

  it('gives the error and the next step as the reason line of a failed host', () => {
    const h = hostReport({
      host: 'a',
      outcome: 'failed',
      error: { class: 'RemoteCommandError', message: 'grub-mkconfig\nexited 1', nextStep: 'fix grub' },
    });
    expect(reasonLine(h)).toBe('grub-mkconfig exited 1; next: fix grub');
  });

  it('falls back to a default next step when a host that is not done carries no error', () => {
    const h = hostReport({ host: 'a', outcome: 'needs-attention' });
    expect(nextStepFor(h)).toMatch(/look at the host/);
    expect(reasonLine(h)).toMatch(/^needs-attention; next: look at the host/);
  });

  it('gives no reason line for migrated and ready hosts', () => {
    expect(reasonLine(hostReport({ host: 'a', outcome: 'migrated' }))).toBe('');
    expect(reasonLine(hostReport({ host: 'a', outcome: 'ready' }))).toBe('');
  });

  it('strips terminal escapes, control characters and bidi overrides from host text', () => {
    expect(oneLine('a\u001b[2Jb\u0007c\u202edef\r\ng')).toBe('a [2Jb c def g');
  });

  it('keeps the last lines of a log and says how many it cut', () => {
    const log = Array.from({ length: 10 }, (_, i) => `line ${i}`).join('\n') + '\n';
    expect(logTail(log, 3)).toEqual({ text: 'line 7\nline 8\nline 9', omitted: 7 });
    expect(logTail('one\ntwo\n', 5)).toEqual({ text: 'one\ntwo', omitted: 0 });
  });

  it('shows ISO timestamps without the T and the milliseconds', () => {
    expect(formatTimestamp('2025-03-01T10:00:00.123Z')).toBe('2025-03-01 10:00:00Z');
    expect(formatTimestamp(null)).toBe('-');
  });
});
