// Small pure helpers every fleet renderer shares: the order problems are listed in, the one
// line that says why a host is not done, and how durations and byte counts read (in reports
// and on the live display).
import type { HostReport, Outcome } from './host-report.ts';

/** Outcomes from "a human must look now" to "done"; renderers list problems first in this order. */
export const OUTCOME_ORDER: readonly Outcome[] = [
  'needs-attention',
  'failed',
  'reverted',
  'unreachable',
  'refused',
  'not-started',
  'ready',
  'migrated',
];

/** The outcomes that mean "this host reached the goal of the command". */
export function isDone(outcome: Outcome): boolean {
  return outcome === 'migrated' || outcome === 'ready';
}

/**
 * The word for "every host made it": the outcomes the hosts ended in (`ready` for `check` and
 * for a `run` that only rehearsed, `migrated` for a run that migrated), never a claim of
 * `migrated` for a run that only pretended.
 */
export function allDoneWord(command: 'check' | 'run', hosts: readonly { outcome: Outcome }[]): string {
  if (command === 'check') return 'ready';
  const ended = (['ready', 'migrated'] as const).filter((o) => hosts.some((h) => h.outcome === o));
  return ended.length > 0 ? ended.join(' or ') : 'migrated';
}

/** Position of an outcome in OUTCOME_ORDER, so sorting by it puts problems first. */
export function outcomeRank(outcome: Outcome): number {
  const rank = OUTCOME_ORDER.indexOf(outcome);
  return rank === -1 ? OUTCOME_ORDER.length : rank;
}

const hostNames = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });

/** Natural order of host names, so `pi-2` comes before `pi-10`. */
export function compareHostNames(a: string, b: string): number {
  return hostNames.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0);
}

/** Problems first (by OUTCOME_ORDER), then host names in natural order. */
export function sortHostsProblemsFirst(hosts: readonly HostReport[]): HostReport[] {
  return [...hosts].sort(
    (a, b) => outcomeRank(a.outcome) - outcomeRank(b.outcome) || compareHostNames(a.host, b.host),
  );
}

/** How many hosts ended in each outcome; outcomes nobody reached are left out. */
export function countOutcomes(hosts: readonly HostReport[]): Partial<Record<Outcome, number>> {
  const counts: Partial<Record<Outcome, number>> = {};
  for (const h of hosts) counts[h.outcome] = (counts[h.outcome] ?? 0) + 1;
  return counts;
}

/** The counts in OUTCOME_ORDER, skipping zeros, for footers and count bars. */
export function orderedCounts(counts: Partial<Record<Outcome, number>>): Array<[Outcome, number]> {
  const out: Array<[Outcome, number]> = [];
  for (const o of OUTCOME_ORDER) {
    const n = counts[o] ?? 0;
    if (n > 0) out.push([o, n]);
  }
  return out;
}

/** What to do next when the host report carries no error of its own. */
export const DEFAULT_NEXT_STEP: Record<Outcome, string> = {
  'needs-attention': 'look at the host itself: its state is unknown, so do not re-run it blindly',
  failed: 'read the host report; every change was undone, so it is safe to re-run after fixing the cause',
  reverted: 'read the stage2 log, fix the cause, then re-run; the host is back on its old OS',
  unreachable: 'check that the host is up and that address, port and credentials are right, then re-run',
  refused: 'fix what the refusal reasons name, or leave the host out of the inventory',
  'not-started': 're-run to reach this host; it was never contacted',
  ready: '',
  migrated: '',
};

/** The step an operator should take next for a host, '' when it is done. */
export function nextStepFor(host: HostReport): string {
  if (isDone(host.outcome)) return '';
  return host.error?.nextStep || DEFAULT_NEXT_STEP[host.outcome];
}

// C0/C1 controls (ESC starts terminal escape sequences) and bidi overrides that can make
// text display differently from what it is. Host-provided text must never carry them to a
// terminal or a table cell.
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]+/g;

/** Host-provided text as a single safe line: controls and newlines become spaces. */
export function oneLine(text: string): string {
  return text.replace(UNSAFE_CHARS, ' ').replace(/\s+/g, ' ').trim();
}

/** Multi-line host text with controls removed but newlines and tabs kept (for logs). */
export function safeMultiline(text: string): string {
  return text
    .replace(/\r\n?/g, '\n')
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '');
}

/**
 * The one line that says why a host is not done and what to do, '' for done hosts:
 * refusal reasons for refused hosts, otherwise the error and the next step.
 */
export function reasonLine(host: HostReport): string {
  if (isDone(host.outcome)) return '';
  if (host.outcome === 'refused' && host.refusalReasons.length > 0) {
    return oneLine(host.refusalReasons.join('; '));
  }
  const next = nextStepFor(host);
  if (host.error) {
    const msg = oneLine(host.error.message);
    return oneLine(next ? `${msg}; next: ${next}` : msg);
  }
  return oneLine(next ? `${host.outcome}; next: ${next}` : host.outcome);
}

// Two readings of durations and sizes, kept apart on purpose: reports show sub-second
// durations in ms and drop the decimal once a size reaches 10 units; the live display and the
// event lines keep one decimal, so a bar's width does not jump while it runs. Both share the
// unit arithmetic below.

/** TOTAL in two units, the smaller padded: `4m05s` for 245 s, `1h02m` for 62 min. */
function twoUnits(total: number, major: string, minor: string): string {
  return `${Math.floor(total / 60)}${major}${String(total % 60).padStart(2, '0')}${minor}`;
}

const BINARY_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** BYTES divided by 1024 until under 1024 or at BINARY_UNITS[largest]. */
function scaleBytes(bytes: number, largest: number): { value: number; unit: string } {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < largest) {
    value /= 1024;
    unit++;
  }
  return { value, unit: BINARY_UNITS[unit]! };
}

/** Compact duration for reports: `850ms`, `12.3s`, `4m05s`, `1h02m`; `-` when unknown. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 59_950) return `${(ms / 1000).toFixed(1)}s`;
  const totalSeconds = Math.round(ms / 1000);
  if (totalSeconds < 3600) return twoUnits(totalSeconds, 'm', 's');
  return twoUnits(Math.round(ms / 60_000), 'h', 'm');
}

/** Binary-prefixed size for reports: `0 B`, `512 B`, `3.4 MiB`, `1.2 GiB`; `-` when unknown. */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes) || bytes < 0) return '-';
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  const { value, unit } = scaleBytes(bytes, 5);
  return `${value.toFixed(value < 10 ? 1 : 0)} ${unit}`;
}

/** Duration on the live display and in event lines: `0.4s`, `12s`, `3m05s`, `1h02m`. */
export function formatProgressDuration(ms: number): string {
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return twoUnits(seconds, 'm', 's');
  return twoUnits(minutes, 'h', 'm');
}

/** Size on the live display and in event lines: `512 B`, `1.5 MiB` (sizes and transfer rates). */
export function formatProgressBytes(bytes: number): string {
  const { value, unit } = scaleBytes(bytes, 4);
  return unit === 'B' ? `${value} B` : `${value.toFixed(1)} ${unit}`;
}

/** The last `lines` lines of a log (without a trailing empty line), and how many were cut. */
export function logTail(log: string, lines: number): { text: string; omitted: number } {
  const all = log.replace(/\n+$/, '').split('\n');
  if (all.length <= lines) return { text: all.join('\n'), omitted: 0 };
  return { text: all.slice(-lines).join('\n'), omitted: all.length - lines };
}

/** `2025-03-01T10:00:00.000Z` as `2025-03-01 10:00:00Z` for people; unparsable input as is. */
export function formatTimestamp(iso: string | null | undefined): string {
  if (!iso) return '-';
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:?\d\d)?$/.exec(iso);
  return m ? `${m[1]} ${m[2]}${m[3] ?? ''}` : oneLine(iso);
}
