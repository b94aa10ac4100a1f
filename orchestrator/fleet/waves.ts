// Waves and the failure budget: parsing `--waves` and `--max-failures`, and turning them into
// wave sizes and a failure limit for a given number of hosts. Pure functions, no I/O.
import { ConfigError } from '../errors.ts';

/** One entry of `--waves`: a cumulative target, as a host count or a share of the selected hosts. */
export type WaveTarget = { kind: 'count'; count: number } | { kind: 'percent'; percent: number };

export interface WaveSpec {
  /** the text as the operator wrote it, for messages */
  source: string;
  targets: WaveTarget[];
}

/**
 * How many failures a run tolerates. `--max-failures N` tolerates N failures: the run stops
 * starting hosts when failure N+1 arrives. `P%` is a share of the hosts the run starts.
 */
export type FailureBudget =
  | { kind: 'count'; max: number }
  | { kind: 'percent'; percent: number }
  | { kind: 'unlimited' };

const COUNT = /^[0-9]+$/;
const PERCENT = /^([0-9]+(?:\.[0-9]+)?)%$/;

const WAVES_HINT =
  'write cumulative targets, e.g. --waves 1,10%,100% (1 host, then up to 10%, then the rest)';

/** Parses `--waves 1,10%,100%`; every entry is a cumulative target, so the list must grow. */
export function parseWaves(source: string): WaveSpec {
  const text = source.trim();
  if (text === '') throw new ConfigError('--waves is empty', undefined, WAVES_HINT);
  const targets: WaveTarget[] = [];
  let lastCount = 0;
  let lastPercent = 0;
  for (const raw of text.split(',')) {
    const token = raw.trim();
    if (token === '') {
      throw new ConfigError(`--waves ${source}: an entry is empty`, undefined, WAVES_HINT);
    }
    const percentMatch = PERCENT.exec(token);
    if (percentMatch) {
      const percent = Number(percentMatch[1]);
      if (percent <= 0 || percent > 100) {
        throw new ConfigError(
          `--waves ${source}: ${token} is not a share between 0% and 100%`,
          undefined,
          WAVES_HINT,
        );
      }
      if (percent <= lastPercent) {
        throw new ConfigError(
          `--waves ${source}: ${token} does not grow past ${lastPercent}%; targets are cumulative`,
          undefined,
          WAVES_HINT,
        );
      }
      lastPercent = percent;
      targets.push({ kind: 'percent', percent });
      continue;
    }
    if (COUNT.test(token)) {
      const count = Number(token);
      if (count === 0) {
        throw new ConfigError(`--waves ${source}: a wave of 0 hosts does nothing`, undefined, WAVES_HINT);
      }
      if (count <= lastCount) {
        throw new ConfigError(
          `--waves ${source}: ${token} does not grow past ${lastCount}; targets are cumulative host counts`,
          undefined,
          WAVES_HINT,
        );
      }
      lastCount = count;
      targets.push({ kind: 'count', count });
      continue;
    }
    throw new ConfigError(
      `--waves ${source}: "${token}" is neither a host count nor a percentage`,
      undefined,
      WAVES_HINT,
    );
  }
  return { source: text, targets };
}

/** A share of n hosts, rounded up so that any non-zero share holds at least one host. */
function shareOf(percent: number, n: number): number {
  // The epsilon keeps float noise (7% of 100 = 7.000000000000001) from adding a host.
  return Math.ceil((percent * n) / 100 - 1e-9);
}

/**
 * Wave sizes for `hostCount` hosts, e.g. `1,10%,100%` over 200 hosts gives [1, 19, 180].
 * Targets past the host count are clamped, a target below the previous one (a count before a
 * percentage on a small fleet) adds nobody, and empty waves are dropped. The last target must
 * reach every host: a run never leaves hosts out silently.
 */
export function planWaves(spec: WaveSpec | null, hostCount: number): number[] {
  if (hostCount === 0) return [];
  if (spec === null) return [hostCount];
  const sizes: number[] = [];
  let reached = 0;
  for (const target of spec.targets) {
    const wanted = target.kind === 'count' ? target.count : shareOf(target.percent, hostCount);
    const cumulative = Math.min(hostCount, Math.max(reached, wanted));
    if (cumulative > reached) sizes.push(cumulative - reached);
    reached = cumulative;
  }
  if (reached < hostCount) {
    throw new ConfigError(
      `--waves ${spec.source} reaches only ${reached} of the ${hostCount} selected hosts`,
      undefined,
      `end the list with 100% (e.g. --waves ${spec.source},100%) or select fewer hosts with --limit`,
    );
  }
  return sizes;
}

/** Splits hosts, in inventory order, into the waves `planWaves` sizes. */
export function splitIntoWaves<H>(hosts: readonly H[], spec: WaveSpec | null): H[][] {
  const waves: H[][] = [];
  let start = 0;
  for (const size of planWaves(spec, hosts.length)) {
    waves.push(hosts.slice(start, start + size));
    start += size;
  }
  return waves;
}

const BUDGET_HINT =
  'write a number of failures to tolerate (--max-failures 2), a share of the hosts (--max-failures 5%), or "none" for no limit';

/** Parses `--max-failures N`, `P%`, or `none` (never stop for failures). */
export function parseMaxFailures(source: string): FailureBudget {
  const token = source.trim();
  if (token === 'none' || token === 'unlimited') return { kind: 'unlimited' };
  if (COUNT.test(token)) return { kind: 'count', max: Number(token) };
  const percentMatch = PERCENT.exec(token);
  if (percentMatch) {
    const percent = Number(percentMatch[1]);
    if (percent > 100) {
      throw new ConfigError(`--max-failures ${source}: a share cannot exceed 100%`, undefined, BUDGET_HINT);
    }
    return { kind: 'percent', percent };
  }
  throw new ConfigError(
    `--max-failures ${source}: "${token}" is neither a count nor a percentage`,
    undefined,
    BUDGET_HINT,
  );
}

/**
 * The budget when the operator gives none. `run` changes devices, and a failure there is most
 * often systemic (a wrong image, a bad network config, an unreachable cloud): the fleet stops
 * starting hosts at the first failure (0 tolerated) so one mistake costs one device, not a
 * fleet. `check` changes nothing, so it never stops early: the operator wants every verdict.
 */
export function defaultFailureBudget(command: 'check' | 'run'): FailureBudget {
  return command === 'run' ? { kind: 'count', max: 0 } : { kind: 'unlimited' };
}

/** Failures tolerated among `hostCount` hosts; null means no limit. P% rounds down. */
export function failureLimit(budget: FailureBudget, hostCount: number): number | null {
  if (budget.kind === 'unlimited') return null;
  if (budget.kind === 'count') return budget.max;
  return Math.floor((budget.percent * hostCount) / 100 + 1e-9);
}

/** True once more failures arrived than the budget tolerates. */
export function isBudgetSpent(limit: number | null, failures: number): boolean {
  return limit !== null && failures > limit;
}

/** `--max-failures` as an operator reads it in messages. */
export function describeBudget(budget: FailureBudget): string {
  if (budget.kind === 'unlimited') return 'none';
  return budget.kind === 'count' ? String(budget.max) : `${budget.percent}%`;
}
