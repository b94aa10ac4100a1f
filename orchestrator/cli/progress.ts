// The live display of a fleet run. On a terminal: an overall bar (hosts done, outcome counts)
// and one bar per slot in flight (host, phase, bytes, rate, ETA), with each host's result
// printed as a line above the bars. Anywhere else (a CI log, a pipe, --json): one line per
// event, progress thinned out so nothing floods the log.
import cliProgress from 'cli-progress';
import { formatProgressBytes, formatProgressDuration } from '../report/format.ts';
import type { Outcome, PhaseName } from '../report/host-report.ts';
import {
  createLineSink,
  type EventSink,
  type FleetEvent,
  formatAmount,
  formatCounts,
  formatEventLine,
  type ThrottleOptions,
} from './events.ts';

export type ProgressMode = 'tty' | 'plain' | 'json';

/** The stream the display writes to; process.stderr in the CLI. */
export interface DisplayStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
  rows?: number;
}

/** Bars need a real terminal that can move its cursor; everything else gets lines. */
export function chooseProgressMode(
  stream: DisplayStream,
  json: boolean,
  env: Record<string, string | undefined> = process.env,
): ProgressMode {
  if (json) return 'json';
  if (stream.isTTY !== true || env.TERM === 'dumb') return 'plain';
  return 'tty';
}

export interface ProgressOptions {
  /** where the display goes; default process.stderr (stdout stays free for a report) */
  stream?: DisplayStream;
  /** absent: chooseProgressMode(stream, json) */
  mode?: ProgressMode;
  json?: boolean;
  /** for the line modes */
  throttle?: ThrottleOptions;
  /** bar redraws per second on a terminal */
  fps?: number;
  now?: () => number;
}

export interface ProgressDisplay {
  mode: ProgressMode;
  /** give this to runFleet as `events` */
  sink: EventSink;
  /** restores the terminal if the run ended without a run-finished event (a crash) */
  stop(): void;
}

/** The display for a fleet run, chosen for the stream it writes to. */
export function createProgressDisplay(options: ProgressOptions = {}): ProgressDisplay {
  const stream = options.stream ?? process.stderr;
  const mode = options.mode ?? chooseProgressMode(stream, options.json ?? false);
  if (mode === 'tty') return new BarDisplay(stream, options.fps ?? 10, options.now ?? Date.now);
  const sink = createLineSink({
    json: mode === 'json',
    write: (line) => stream.write(line),
    ...(options.throttle ? { throttle: options.throttle } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
  return { mode, sink, stop: () => {} };
}

/** A check mark for success, a cross for what needs a look, a dot for what did not run. */
function outcomeMark(outcome: Outcome): string {
  switch (outcome) {
    case 'migrated':
    case 'ready':
      return '✔';
    case 'refused':
    case 'not-started':
      return '·';
    case 'reverted':
      return '↺';
    default:
      return '✖';
  }
}

function column(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, width - 1)}…` : text.padEnd(width);
}

interface Slot {
  bar: cliProgress.SingleBar;
  host: string | null;
  phase: PhaseName | null;
  label: string | null;
  done: number;
  total: number;
  /** where the rate is measured from: reset when the phase or the label changes */
  rateFrom: { at: number; done: number } | null;
  retries: number;
}

const BAR_WIDTH = 20;
/** Lines the display keeps for itself besides the slot bars: the overall bar and some log. */
const RESERVED_ROWS = 6;
/** ESC [ K: clears the rest of a line, so a log line leaves nothing of what was drawn there. */
const CLEAR_TO_END = '\u001b[K';

function emptySlot(bar: cliProgress.SingleBar): Slot {
  return { bar, host: null, phase: null, label: null, done: 0, total: 0, rateFrom: null, retries: 0 };
}

/**
 * The terminal display: cli-progress MultiBar, one overall bar and one bar per slot in flight
 * (as many as fit the terminal; the overall bar counts the rest).
 */
class BarDisplay implements ProgressDisplay {
  readonly mode = 'tty' as const;
  private multibar: cliProgress.MultiBar | null = null;
  private overall: cliProgress.SingleBar | null = null;
  private slots: Slot[] = [];
  private counts: Partial<Record<Outcome, number>> = {};
  private finishedHosts = 0;
  private inFlight = 0;
  private totalHosts = 0;
  private wave = { current: 0, of: 0 };
  private startedAt = 0;
  private hostWidth = 16;

  constructor(
    private readonly stream: DisplayStream,
    private readonly fps: number,
    private readonly now: () => number,
  ) {}

  readonly sink: EventSink = (event) => this.onEvent(event);

  stop(): void {
    if (!this.multibar) return;
    // MultiBar writes logged lines on its next redraw only: redraw once before stopping.
    this.multibar.update();
    this.multibar.stop();
    this.multibar = null;
  }

  /** A line above the bars; before the bars exist (or after), straight to the stream. */
  private log(line: string): void {
    if (this.multibar) this.multibar.log(`${line}${CLEAR_TO_END}\n`);
    else this.stream.write(`${line}\n`);
  }

  private start(event: Extract<FleetEvent, { type: 'run-started' }>): void {
    this.startedAt = this.now();
    this.totalHosts = event.hosts;
    this.wave = { current: 0, of: event.waveSizes.length };
    const columns = this.stream.columns || 80;
    const rows = this.stream.rows || 24;
    // What a slot line needs besides the host name: phase, bar, percent, amounts, rate, ETA.
    this.hostWidth = Math.max(8, Math.min(24, columns - 92));
    this.multibar = new cliProgress.MultiBar({
      stream: this.stream as NodeJS.WritableStream,
      fps: this.fps,
      hideCursor: true,
      clearOnComplete: false,
      linewrap: false,
      gracefulExit: false,
      // Log lines push the bars down; a bar drawn only on change would leave stale lines.
      forceRedraw: true,
      barsize: BAR_WIDTH,
      barCompleteChar: '█',
      barIncompleteChar: '░',
      format: (options, params) => this.overallLine(cliProgress.Format.BarFormat(params.progress, options)),
    });
    this.log(formatEventLine(event) ?? '');
    this.overall = this.multibar.create(Math.max(1, event.hosts), 0);
    const slotCount = Math.max(1, Math.min(event.concurrency, event.toRun, rows - RESERVED_ROWS));
    for (let index = 0; index < slotCount; index++) {
      const slot = emptySlot(
        this.multibar.create(1, 0, {}, { format: (options) => this.slotLine(slot, options) }),
      );
      this.slots.push(slot);
    }
  }

  private overallLine(bar: string): string {
    const waves = this.wave.of > 1 ? `  wave ${this.wave.current}/${this.wave.of}` : '';
    const elapsed = formatProgressDuration(this.now() - this.startedAt);
    const hidden = this.inFlight - this.slots.filter((s) => s.host !== null).length;
    const flight =
      this.inFlight > 0 ? `  ${this.inFlight} in flight${hidden > 0 ? ` (${hidden} not shown)` : ''}` : '';
    const counts = this.finishedHosts > 0 ? `  ${formatCounts(this.counts)}` : '';
    return `fleet ${bar} ${this.finishedHosts}/${this.totalHosts} hosts${waves}  ${elapsed}${flight}${counts}`;
  }

  private slotLine(slot: Slot, options: cliProgress.Options): string {
    if (slot.host === null) return `  ${column('·', this.hostWidth)} idle`;
    const what = slot.label ? `${slot.phase ?? ''} ${slot.label}` : (slot.phase ?? 'starting');
    const head = `  ${column(slot.host, this.hostWidth)} ${column(what, 16)}`;
    const retries = slot.retries > 0 ? `  ${slot.retries} retr${slot.retries === 1 ? 'y' : 'ies'}` : '';
    if (slot.total <= 0) return `${head}${retries}`;
    const fraction = Math.min(1, slot.done / slot.total);
    const bar = cliProgress.Format.BarFormat(
      fraction,
      options as Parameters<typeof cliProgress.Format.BarFormat>[1],
    );
    const percent = `${String(Math.floor(fraction * 100)).padStart(3)}%`;
    const amount = formatAmount(slot.phase, slot.done, slot.total);
    let rate = '';
    if (slot.rateFrom) {
      const seconds = (this.now() - slot.rateFrom.at) / 1000;
      const perSecond = seconds >= 0.5 ? (slot.done - slot.rateFrom.done) / seconds : 0;
      if (perSecond > 0) {
        const bytes = slot.phase === 'upload' || slot.phase === 'payload';
        const speed = bytes ? `${formatProgressBytes(perSecond)}/s` : `${perSecond.toFixed(1)}/s`;
        rate = `  ${speed}  ETA ${formatProgressDuration(((slot.total - slot.done) / perSecond) * 1000)}`;
      }
    }
    return `${head} ${bar} ${percent} ${amount}${rate}${retries}`;
  }

  private slotOf(host: string): Slot | undefined {
    return this.slots.find((s) => s.host === host);
  }

  private redraw(): void {
    // The overall bar's value drives its fill; the slot bars read their own state when drawn.
    this.overall?.update(this.finishedHosts);
  }

  private onEvent(event: FleetEvent): void {
    switch (event.type) {
      case 'run-started':
        this.start(event);
        return;
      case 'wave-started':
        this.wave.current = event.wave;
        if (event.waves > 1) this.log(formatEventLine(event) ?? '');
        this.redraw();
        return;
      case 'wave-finished':
        if (event.waves > 1) this.log(formatEventLine(event) ?? '');
        return;
      case 'host-started': {
        this.inFlight++;
        // The display keeps its own slots: a host gets the first idle bar, if one is left.
        const slot = this.slots.find((s) => s.host === null);
        // The bar's formatter holds the slot object itself: change it in place.
        if (slot) Object.assign(slot, emptySlot(slot.bar), { host: event.host });
        return;
      }
      case 'host-phase': {
        const slot = this.slotOf(event.host);
        if (slot) Object.assign(slot, { phase: event.phase, label: null, done: 0, total: 0, rateFrom: null });
        return;
      }
      case 'host-progress': {
        const slot = this.slotOf(event.host);
        if (!slot) return;
        const label = event.label ?? null;
        if (slot.rateFrom === null || label !== slot.label || event.phase !== slot.phase) {
          slot.rateFrom = { at: this.now(), done: event.done };
        }
        Object.assign(slot, {
          phase: event.phase ?? slot.phase,
          label,
          done: event.done,
          total: event.total,
        });
        return;
      }
      case 'host-retry': {
        const slot = this.slotOf(event.host);
        if (slot) slot.retries++;
        this.log(`  ${formatEventLine(event)}`);
        return;
      }
      case 'host-log':
        this.log(`  ${formatEventLine(event)}`);
        return;
      case 'host-finished': {
        this.inFlight--;
        const slot = this.slotOf(event.host);
        if (slot) Object.assign(slot, emptySlot(slot.bar));
        this.tally(event.outcome);
        const detail = event.detail ? `  ${event.detail}` : '';
        this.log(
          `${outcomeMark(event.outcome)} ${column(event.host, this.hostWidth)} ${column(event.outcome, 15)} ${formatProgressDuration(event.durationMs)}${detail}`,
        );
        return;
      }
      case 'host-skipped':
        // Dozens of not-started hosts would bury the results: they are counted on the bar and
        // listed in failed-hosts.txt, which the final line names.
        this.tally(event.outcome);
        return;
      case 'budget-spent':
      case 'stopping':
      case 'aborting':
        this.log(`! ${formatEventLine(event)}`);
        return;
      case 'run-finished':
        this.redraw();
        // The final screen keeps the overall bar; idle slot bars would only be noise.
        for (const slot of this.slots.splice(0)) this.multibar?.remove(slot.bar);
        this.stop();
        this.stream.write(`${formatEventLine(event)}\n`);
        return;
    }
  }

  private tally(outcome: Outcome): void {
    this.counts[outcome] = (this.counts[outcome] ?? 0) + 1;
    this.finishedHosts++;
    this.redraw();
  }
}
