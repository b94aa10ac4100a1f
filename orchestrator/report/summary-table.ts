// The summary printed at the end of a run: one row per host, problems first, the reason and
// next step for every host that is not done, then the counts and the total time.
import {
  formatBytes,
  formatDuration,
  isDone,
  oneLine,
  orderedCounts,
  reasonLine,
  sortHostsProblemsFirst,
} from './format.ts';
import type { FleetReport, HostReport, Outcome } from './host-report.ts';

export interface SummaryTableOptions {
  /** ANSI colours for outcomes and headings; false gives plain ASCII */
  color: boolean;
  /** terminal columns; Infinity (or 0) for no limit */
  width: number;
}

interface Column {
  title: string;
  align: 'left' | 'right';
  /** widest a cell may get before it is cut */
  max: number;
  cell(h: HostReport): string;
}

const SEP = '  ';
/** Below this many columns the reason goes on its own line under the host's row. */
const MIN_INLINE_REASON = 24;
const CONTINUATION_INDENT = '    ';

const OUTCOME_SGR: Record<Outcome, string> = {
  'needs-attention': '1;31',
  failed: '31',
  reverted: '33',
  unreachable: '35',
  refused: '36',
  'not-started': '2',
  ready: '32',
  migrated: '32',
};

/** Renders the end-of-run table; problems first so they stay visible above the fold. */
export function renderSummaryTable(fleet: FleetReport, opts: SummaryTableOptions): string {
  const width = Number.isFinite(opts.width) && opts.width > 0 ? Math.floor(opts.width) : Infinity;
  const paint = (sgr: string, text: string) => (opts.color ? `\u001b[${sgr}m${text}\u001b[0m` : text);
  const ellipsis = opts.color ? '\u2026' : '...';
  const hosts = sortHostsProblemsFirst(fleet.hosts);

  if (hosts.length === 0) {
    return `No hosts in run ${oneLine(fleet.runId)} (total time ${formatDuration(fleet.durationMs)}).\n`;
  }

  const columns: Column[] = [
    { title: 'HOST', align: 'left', max: 32, cell: (h) => oneLine(h.host) },
    { title: 'OUTCOME', align: 'left', max: 15, cell: (h) => h.outcome },
    { title: 'DEVICE TYPE', align: 'left', max: 24, cell: (h) => oneLine(h.deviceType ?? '-') || '-' },
  ];
  if (hosts.some((h) => h.wave !== null)) {
    columns.push({
      title: 'WAVE',
      align: 'right',
      max: 6,
      cell: (h) => (h.wave === null ? '-' : String(h.wave)),
    });
  }
  columns.push(
    { title: 'DURATION', align: 'right', max: 10, cell: (h) => formatDuration(h.durationMs) },
    {
      title: 'SENT',
      align: 'right',
      max: 10,
      cell: (h) => (h.bytesSent > 0 ? formatBytes(h.bytesSent) : '-'),
    },
  );

  const cells = hosts.map((h) => columns.map((c) => truncate(c.cell(h), c.max, ellipsis)));
  const widths = columns.map((c, i) => Math.max(len(c.title), ...cells.map((row) => len(row[i] ?? ''))));
  const fixedWidth = widths.reduce((a, b) => a + b, 0) + SEP.length * (columns.length - 1);

  const reasons = hosts.map(reasonLine);
  const longestReason = Math.max(0, ...reasons.map(len));
  const reasonTitle = 'REASON / NEXT STEP';
  const room = width - fixedWidth - SEP.length;
  const inlineReason = longestReason > 0 && room >= MIN_INLINE_REASON;
  const reasonWidth = inlineReason ? Math.min(Math.max(longestReason, len(reasonTitle)), room) : 0;

  const pad = (text: string, w: number, align: 'left' | 'right') =>
    align === 'right' ? ' '.repeat(w - len(text)) + text : text + ' '.repeat(w - len(text));

  const lines: string[] = [];
  const titles = columns.map((c, i) => pad(c.title, widths[i] ?? 0, c.align));
  if (inlineReason) titles.push(truncate(reasonTitle, reasonWidth, ellipsis));
  lines.push(paint('1', titles.join(SEP).trimEnd()));
  const rules = widths.map((w) => '-'.repeat(w));
  if (inlineReason) rules.push('-'.repeat(reasonWidth));
  lines.push(rules.join(SEP));

  hosts.forEach((h, r) => {
    const row = columns.map((c, i) => {
      const text = pad(cells[r]?.[i] ?? '', widths[i] ?? 0, c.align);
      return c.title === 'OUTCOME' ? paint(OUTCOME_SGR[h.outcome], text) : text;
    });
    const reason = reasons[r] ?? '';
    if (inlineReason && reason) row.push(truncate(reason, reasonWidth, ellipsis));
    lines.push(row.join(SEP).trimEnd());
    if (!inlineReason && reason) {
      const room = width - CONTINUATION_INDENT.length;
      lines.push(CONTINUATION_INDENT + truncate(reason, Math.max(room, 8), ellipsis));
    }
  });

  lines.push('');
  const counts = orderedCounts(fleet.counts).map(([o, n]) => paint(OUTCOME_SGR[o], `${n} ${o}`));
  const done = hosts.filter((h) => isDone(h.outcome)).length;
  const total = `${hosts.length} host${hosts.length === 1 ? '' : 's'}:`;
  lines.push(...wrapWords([total, ...counts.map((c, i) => (i < counts.length - 1 ? `${c},` : c))], width));
  const needLook = hosts.length - done;
  const verdict =
    needLook === 0 ? 'every host is done' : `${needLook} need${needLook === 1 ? 's' : ''} a look`;
  lines.push(
    `total time ${formatDuration(fleet.durationMs)}; ${verdict}; exit code ${fleet.exitCode} (run ${oneLine(fleet.runId)})`,
  );
  return `${lines.join('\n')}\n`;
}

/** Visible length: code points, with ANSI colour sequences not counted. */
function len(text: string): number {
  return [...text.replace(/\u001b\[[0-9;]*m/g, '')].length;
}

/** Cuts text to `max` columns, at a word boundary when one is close, marking the cut. */
export function truncate(text: string, max: number, ellipsis = '...'): string {
  const chars = [...text];
  if (!Number.isFinite(max) || chars.length <= max) return text;
  if (max <= ellipsis.length) return chars.slice(0, Math.max(max, 0)).join('');
  const keep = max - ellipsis.length;
  let cut = chars.slice(0, keep).join('');
  const space = cut.lastIndexOf(' ');
  if (space >= keep - 12 && space > keep / 2) cut = cut.slice(0, space);
  return cut.replace(/[\s;,:]+$/, '') + ellipsis;
}

/** Joins words into lines no wider than `width` (colour codes not counted). */
function wrapWords(words: string[], width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line && len(line) + 1 + len(word) > width) {
      lines.push(line);
      line = `  ${word}`;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}
