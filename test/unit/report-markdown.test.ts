import { describe, expect, it } from 'vitest';
import {
  MARKDOWN_LOG_TAIL_LINES,
  mdText,
  renderSummaryMarkdown,
} from '../../orchestrator/report/markdown.ts';
import { checkFleet, fleetOf, hostileFleet, hostReport, runFleet } from '../fixtures/reports/fleet.ts';

/** Table cells of a Markdown row, honouring backslash-escaped pipes. */
const cells = (row: string) =>
  row
    .slice(1, -1)
    .split(/(?<!\\)\|/)
    .map((c) => c.trim());

describe('renderSummaryMarkdown', () => {
  const md = renderSummaryMarkdown(runFleet());

  it('opens with the run, the total time and how many hosts need a human', () => {
    expect(md).toMatch(/^# balena-migrate run: 20250301-100000-a1b2\n/);
    expect(md).toContain('total time **14m03s**, exit code **1**');
    expect(md).toContain('**8 of 12 hosts need a human.**');
  });

  it('has a count per outcome, problems first, and the total', () => {
    const start = md.indexOf('| outcome | hosts |');
    const block = md.slice(start, md.indexOf('\n\n', start)).split('\n').slice(2);
    expect(block).toEqual([
      '| needs-attention | 1 |',
      '| failed | 1 |',
      '| reverted | 1 |',
      '| unreachable | 2 |',
      '| refused | 2 |',
      '| not-started | 1 |',
      '| migrated | 4 |',
      '| **total** | **12** |',
    ]);
  });

  it('has a table row for every host, each with seven cells', () => {
    const rows = md.split('\n').filter((l) => /^\| (\[|nuc|pi)/.test(l));
    expect(rows).toHaveLength(12);
    for (const row of rows) expect(cells(row)).toHaveLength(7);
    expect(cells(rows[0] ?? '')[1]).toBe('needs-attention');
    expect(cells(rows[11] ?? '')).toEqual([
      'pi-10',
      'migrated',
      'raspberrypi4-64',
      '2',
      '6m39s',
      '640 MiB',
      '',
    ]);
  });

  it('links each problem host in the table to its own section', () => {
    const link = /\[bbb-07\]\(#(host-\d+-bbb-07)\)/.exec(md);
    expect(link).not.toBeNull();
    expect(md).toContain(`<a id="${link?.[1]}"></a>`);
  });

  it('has a section for every host that needs a human and none for migrated hosts', () => {
    const headings = md.split('\n').filter((l) => l.startsWith('### '));
    expect(headings).toEqual([
      '### win-lab-2: needs-attention',
      '### nuc-05: failed',
      '### bbb-07: reverted',
      '### edge-gw-4: unreachable',
      '### kiosk-9: unreachable',
      '### old-pc-1: refused',
      '### pi-zero-1: refused',
      '### spare-12: not-started',
    ]);
  });

  it('lists the refusal reasons of a refused host', () => {
    const section = md.slice(md.indexOf('### old-pc-1'), md.indexOf('### pi-zero-1'));
    expect(section).toContain('- install disk sda is 4.0 GiB; balenaOS needs at least 8 GiB');
    expect(section).toContain('- Secure Boot is on');
    expect(section).toContain('**Next step:** fix what the refusal reasons name');
  });

  it('gives the error, the next step and where a failed host stopped', () => {
    const section = md.slice(md.indexOf('### nuc-05'), md.indexOf('### bbb-07'));
    expect(section).toContain('**Error** (RemoteCommandError): grub-mkconfig exited 1');
    expect(section).toContain('**Next step:** a remote command failed during apply');
    expect(section).toContain('Stopped in phase `apply` after 12.0s.');
  });

  it('quotes the tail of the stage2 log and says how much was left out', () => {
    const section = md.slice(md.indexOf('### bbb-07'), md.indexOf('### edge-gw-4'));
    expect(section).toContain(`last ${MARKDOWN_LOG_TAIL_LINES} lines (21 earlier lines are in report.json)`);
    const log = /```text\n([\s\S]*?)\n```/.exec(section)?.[1] ?? '';
    expect(log.split('\n')).toHaveLength(MARKDOWN_LOG_TAIL_LINES);
    expect(log).toContain('sha256 of balena.img.gz does not match');
    expect(log).not.toContain('[20] step 20');
  });

  it('says all hosts are ready when a check found nothing wrong', () => {
    const fleet = checkFleet();
    const ready = fleetOf(
      fleet.hosts.filter((h) => h.outcome === 'ready'),
      { command: 'check' },
    );
    const out = renderSummaryMarkdown(ready);
    expect(out).toContain('All 2 hosts ready.');
    expect(out).not.toContain('## Hosts that need a human');
  });

  it('says a run that only rehearsed left its hosts ready, not migrated', () => {
    const fleet = checkFleet();
    const ready = fleetOf(
      fleet.hosts.filter((h) => h.outcome === 'ready').map((h) => ({ ...h, command: 'run' as const })),
      { command: 'run', mode: 'pretend' },
    );
    const out = renderSummaryMarkdown(ready);
    expect(out).toContain('All 2 hosts ready.');
    expect(out).not.toContain('migrated');
  });

  it('escapes host names, messages and reasons so they render as text', () => {
    const out = renderSummaryMarkdown(hostileFleet());
    const outsideFences = out.replace(/```text\n[\s\S]*?\n```/g, '').replace(/`[^`\n]*`/g, '');
    expect(outsideFences).not.toMatch(/<(script|img|b|i)\b/);
    expect(out).toContain('### &lt;script&gt;alert(1)&lt;/script&gt;: reverted');
    expect(out).toContain('\\[link\\](javascript:alert(4))');
    const row = out.split('\n').find((l) => l.startsWith('| [ok-host]')) ?? '';
    expect(cells(row)).toHaveLength(7);
  });

  it('fences a log with more backticks than the log contains', () => {
    const fleet = fleetOf([
      hostReport({ host: 'x', outcome: 'reverted', stage2Log: 'before\n````\n```\nafter' }),
    ]);
    const out = renderSummaryMarkdown(fleet);
    expect(out).toContain('`````text\nbefore\n````\n```\nafter\n`````');
  });

  it('escapes Markdown markup and HTML in a line of host text', () => {
    expect(mdText('a|b *c* _d_ <e> & `f`')).toBe('a\\|b \\*c\\* \\_d\\_ &lt;e&gt; &amp; \\`f\\`');
    expect(mdText('# not a heading')).toBe('\\# not a heading');
    expect(mdText('1. not a list')).toBe('1\\. not a list');
  });
});
