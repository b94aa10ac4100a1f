// summary.md: the counts, a table of every host, then one section per host a human has to
// look at (refusal reasons, error and next step, the tail of the stage2 log).
import {
  allDoneWord,
  formatBytes,
  formatDuration,
  formatTimestamp,
  isDone,
  logTail,
  nextStepFor,
  oneLine,
  orderedCounts,
  reasonLine,
  safeMultiline,
  sortHostsProblemsFirst,
} from './format.ts';
import type { FleetReport, HostReport } from './host-report.ts';

/** Lines of the stage2 log quoted per host; the full log is in the host's report.json. */
export const MARKDOWN_LOG_TAIL_LINES = 40;

/** Renders summary.md for a fleet; everything that came from a host is escaped. */
export function renderSummaryMarkdown(fleet: FleetReport): string {
  const hosts = sortHostsProblemsFirst(fleet.hosts);
  const needHuman = hosts.filter((h) => !isDone(h.outcome));
  const out: string[] = [];

  out.push(`# balena-migrate ${fleet.command}: ${mdText(fleet.runId)}`, '');
  out.push(
    `Mode \`${mdCode(fleet.mode)}\`, started ${formatTimestamp(fleet.startedAt)}, ended ${formatTimestamp(fleet.endedAt)}, ` +
      `total time **${formatDuration(fleet.durationMs)}**, exit code **${fleet.exitCode}**.`,
    '',
  );
  const doneWord = allDoneWord(fleet.command, hosts);
  out.push(
    needHuman.length === 0
      ? `All ${hosts.length} host${hosts.length === 1 ? '' : 's'} ${doneWord}.`
      : `**${needHuman.length} of ${hosts.length} hosts need a human.**`,
    '',
  );

  out.push('| outcome | hosts |', '| --- | ---: |');
  for (const [outcome, n] of orderedCounts(fleet.counts)) out.push(`| ${outcome} | ${n} |`);
  out.push(`| **total** | **${hosts.length}** |`, '');

  out.push('## Hosts', '');
  if (hosts.length === 0) {
    out.push('No hosts in this run.', '');
  } else {
    out.push(
      '| host | outcome | device type | wave | duration | bytes sent | reason / next step |',
      '| --- | --- | --- | ---: | ---: | ---: | --- |',
    );
    for (const h of hosts) {
      const link = isDone(h.outcome) ? mdText(h.host) : `[${mdText(h.host)}](#${anchorFor(h, hosts)})`;
      out.push(
        `| ${link} | ${h.outcome} | ${h.deviceType ? mdText(h.deviceType) : '-'} | ${h.wave ?? '-'} | ` +
          `${formatDuration(h.durationMs)} | ${h.bytesSent > 0 ? formatBytes(h.bytesSent) : '-'} | ${mdText(reasonLine(h))} |`,
      );
    }
    out.push('');
  }

  if (needHuman.length > 0) {
    out.push('## Hosts that need a human', '');
    for (const h of needHuman) out.push(...hostSection(h, anchorFor(h, hosts)));
  }
  return `${out
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trimEnd()}\n`;
}

/** One section per host that is not done: what happened, what to do, what stage2 said. */
function hostSection(h: HostReport, anchor: string): string[] {
  const out: string[] = [];
  // An explicit anchor: heading slugs differ between renderers and host names can be anything.
  out.push(`<a id="${anchor}"></a>`, '', `### ${mdText(h.host)}: ${h.outcome}`, '');
  const facts = [
    `address \`${mdCode(`${h.address}:${h.port}`)}\``,
    `device type ${h.deviceType ? `\`${mdCode(h.deviceType)}\`` : 'unknown'}`,
    h.bootManager ? `boot manager \`${mdCode(h.bootManager)}\`` : null,
    h.wave !== null ? `wave ${h.wave}` : null,
    `duration ${formatDuration(h.durationMs)}`,
  ].filter((x): x is string => x !== null);
  out.push(facts.join(', '), '');

  if (h.refusalReasons.length > 0) {
    out.push('Refused because:', '');
    for (const r of h.refusalReasons) out.push(`- ${mdText(r)}`);
    out.push('');
  }
  if (h.error) {
    out.push(`**Error** (${mdText(h.error.class)}): ${mdText(h.error.message)}`, '');
  }
  const next = nextStepFor(h);
  if (next) out.push(`**Next step:** ${mdText(next)}`, '');

  // Where it stopped, unless the refusal reasons already say it; the phase's own error only
  // when the host error does not already carry it.
  const failedPhase = h.outcome === 'refused' ? undefined : h.phases.find((p) => !p.ok);
  if (failedPhase) {
    const extra = failedPhase.error && !h.error?.message.includes(failedPhase.error) ? failedPhase.error : '';
    out.push(
      `Stopped in phase \`${failedPhase.name}\` after ${formatDuration(failedPhase.durationMs)}` +
        (extra ? `: ${mdText(extra)}` : '.'),
      '',
    );
  }

  if (h.stage2Log) {
    const { text, omitted } = logTail(safeMultiline(h.stage2Log), MARKDOWN_LOG_TAIL_LINES);
    out.push(
      omitted > 0
        ? `Stage2 log, last ${MARKDOWN_LOG_TAIL_LINES} lines (${omitted} earlier lines are in report.json):`
        : 'Stage2 log:',
      '',
      ...fenced(text),
      '',
    );
  }
  return out;
}

/** A stable, unique anchor per host that does not depend on what characters its name has. */
function anchorFor(h: HostReport, hosts: HostReport[]): string {
  const slug = h.host
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return `host-${hosts.indexOf(h) + 1}${slug ? `-${slug}` : ''}`;
}

/**
 * Host-provided text made inert for a Markdown line or table cell: one line, HTML entities
 * for what GitHub would render as tags, backslashes before inline markup, and the first
 * character escaped when it could start a heading or a list.
 */
export function mdText(text: string): string {
  return oneLine(text)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/[\\`*_[\]|~]/g, (c) => `\\${c}`)
    .replace(/^([#+=-])/, '\\$1')
    .replace(/^(\d+)([.)])/, '$1\\$2');
}

/** Text for inside an inline code span: one line, no backticks (they would end the span). */
function mdCode(text: string): string {
  return oneLine(text).replace(/`/g, "'").replace(/\|/g, '\\|');
}

/** A fenced block that the text cannot close: the fence is longer than any backtick run in it. */
function fenced(text: string): string[] {
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return [`${fence}text`, text, fence];
}
