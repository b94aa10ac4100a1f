import { describe, expect, it } from 'vitest';
import { renderSummaryTable, truncate } from '../../orchestrator/report/summary-table.ts';
import { checkFleet, fleetOf, hostileFleet, runFleet } from '../fixtures/reports/fleet.ts';

const ANSI = /\u001b\[[0-9;]*m/g;
const visible = (line: string) => [...line.replace(ANSI, '')].length;
const rowsOf = (table: string) =>
  table.split('\n').filter((l) => /^\S/.test(l) && !/^(HOST|-|\d+ hosts?:)/.test(l));

describe('renderSummaryTable', () => {
  it('shows one row per host with problems first and migrated hosts last', () => {
    const rows = rowsOf(renderSummaryTable(runFleet(), { color: false, width: 200 }));
    expect(rows.filter((r) => !r.startsWith('total time'))).toHaveLength(12);
    expect(rows[0]).toMatch(
      /^win-lab-2\s+needs-attention\s+genericx86-64-ext\s+3\s+20m10s\s+1\.1 GiB\s+neither/,
    );
    expect(rows[1]).toMatch(/^nuc-05\s+failed/);
    expect(rows.slice(8, 12).map((r) => r.split(/\s+/)[0])).toEqual(['nuc-01', 'nuc-02', 'pi-3', 'pi-10']);
  });

  it('ends with the counts per outcome and the total time', () => {
    const table = renderSummaryTable(runFleet(), { color: false, width: 200 });
    expect(table).toContain(
      '12 hosts: 1 needs-attention, 1 failed, 1 reverted, 2 unreachable, 2 refused, 1 not-started, 4 migrated',
    );
    expect(table).toMatch(/total time 14m03s; 8 need a look; exit code 1/);
  });

  it('is plain ASCII without colour', () => {
    const table = renderSummaryTable(runFleet(), { color: false, width: 120 });
    expect(table).toMatch(/^[\n\x20-\x7e]*$/);
  });

  it('colours outcomes with ANSI codes when colour is on, without changing the layout', () => {
    const plain = renderSummaryTable(runFleet(), { color: false, width: 1000 });
    const colored = renderSummaryTable(runFleet(), { color: true, width: 1000 });
    expect(colored).toContain('\u001b[1;31mneeds-attention');
    expect(colored.replace(ANSI, '')).toBe(plain);
  });

  it.each([80, 100, 120, 160])('keeps every line within %i columns', (width) => {
    for (const color of [false, true]) {
      const lines = renderSummaryTable(runFleet(), { color, width }).split('\n');
      for (const line of lines) expect(visible(line), line).toBeLessThanOrEqual(width);
    }
  });

  it('cuts long reasons at a word boundary and marks the cut', () => {
    const table = renderSummaryTable(runFleet(), { color: false, width: 140 });
    const row = table.split('\n').find((l) => l.startsWith('nuc-05')) ?? '';
    expect(row).toMatch(/grub-mkconfig exited 1: .*\.\.\.$/);
    expect(row).not.toMatch(/[\s;,:]\.\.\.$/);
    expect(row.length).toBeLessThanOrEqual(140);
  });

  it('prints the whole reason when the width is unlimited', () => {
    const table = renderSummaryTable(runFleet(), { color: false, width: Number.POSITIVE_INFINITY });
    expect(table).toContain(
      'next: go to the device or its console: stage2 may still be flashing; do not power it off before the disk LED is idle',
    );
  });

  it('moves reasons to an indented line of their own when the terminal is too narrow for a column', () => {
    const lines = renderSummaryTable(runFleet(), { color: false, width: 80 }).split('\n');
    expect(lines[0]).not.toContain('REASON');
    const i = lines.findIndex((l) => l.startsWith('nuc-05'));
    expect(lines[i + 1]).toMatch(/^ {4}grub-mkconfig exited 1/);
    const migrated = lines.findIndex((l) => l.startsWith('nuc-01'));
    expect(lines[migrated + 1]).toMatch(/^nuc-02/);
  });

  it('leaves out the wave column when no host is in a wave', () => {
    const table = renderSummaryTable(checkFleet(), { color: false, width: 120 });
    expect(table.split('\n')[0]).not.toContain('WAVE');
    expect(table).toContain('4 hosts: 1 unreachable, 1 refused, 2 ready');
  });

  it('never passes escape sequences or newlines from a host to the terminal', () => {
    const table = renderSummaryTable(hostileFleet(), { color: false, width: 200 });
    expect(table).not.toContain('\u001b');
    expect(table).not.toContain('\u0007');
    expect(table).toContain('line one line two');
    expect(table).toContain('<script>alert(1)</script>');
  });

  it('says so when the run has no hosts', () => {
    expect(renderSummaryTable(fleetOf([]), { color: false, width: 80 })).toMatch(/^No hosts in run /);
  });

  it('truncates to the exact width, preferring a word boundary', () => {
    expect(truncate('short', 10)).toBe('short');
    expect(truncate('alpha beta gamma delta', 15)).toBe('alpha beta...');
    expect(truncate('abcdefghijklmnop', 8)).toBe('abcde...');
  });
});
