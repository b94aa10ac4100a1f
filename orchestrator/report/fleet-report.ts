// Assembles a FleetReport from the run's metadata and its host reports. Pure: the runner
// calls it at the end of a run, and readFleetReport calls it when re-rendering a run dir.
import { z } from 'zod';
import { Facts } from '../facts/facts.ts';
import { compareHostNames, countOutcomes, isDone } from './format.ts';
import { type FleetReport, type HostReport, OUTCOMES, PHASES } from './host-report.ts';

/** What run.json holds. endedAt and exitCode are null while a run is going (or if it died). */
export const RunMeta = z.looseObject({
  runId: z.string().min(1),
  command: z.enum(['check', 'run']),
  mode: z.string(),
  startedAt: z.string(),
  endedAt: z.string().nullable().optional(),
  exitCode: z.number().int().nullable().optional(),
});
export type RunMeta = z.infer<typeof RunMeta>;

const PhaseRecordSchema = z.looseObject({
  name: z.enum(PHASES),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  durationMs: z.number().nullable(),
  ok: z.boolean(),
  bytes: z.number().optional(),
  retries: z.number().int().nonnegative(),
  error: z.string().optional(),
});

/** The HostReport contract as a schema, to check report.json files written by any version. */
export const HostReportSchema = z.looseObject({
  host: z.string().min(1),
  address: z.string(),
  port: z.number().int(),
  wave: z.number().int().nullable(),
  command: z.enum(['check', 'run']),
  outcome: z.enum(OUTCOMES),
  failed: z.boolean(),
  deviceType: z.string().nullable(),
  bootManager: z.string().nullable(),
  startedAt: z.string().nullable(),
  endedAt: z.string().nullable(),
  durationMs: z.number().nullable(),
  phases: z.array(PhaseRecordSchema),
  bytesSent: z.number().nonnegative(),
  retries: z.number().int().nonnegative(),
  refusalReasons: z.array(z.string()),
  error: z.object({ class: z.string(), message: z.string(), nextStep: z.string() }).nullable(),
  // Facts only inform the reports; facts from another probe version must not hide the host.
  facts: Facts.nullable().catch(null),
  plan: z.unknown().transform((v) => v ?? null),
  stage2Log: z.string().nullable(),
});

/** Parses one report.json value into a HostReport, or throws a zod error saying what is wrong. */
export function parseHostReport(value: unknown): HostReport {
  return HostReportSchema.parse(value) satisfies HostReport;
}

/**
 * The fleet record: hosts in natural name order, counts computed from them. When run.json
 * has no end (the run is going or died), the end is the last host's end and the exit code
 * is what the outcomes imply (0 only when every host is done).
 */
export function buildFleetReport(meta: RunMeta, hosts: HostReport[]): FleetReport {
  const sorted = [...hosts].sort((a, b) => compareHostNames(a.host, b.host));
  const endedAt = meta.endedAt ?? latest([meta.startedAt, ...sorted.map((x) => x.endedAt)]);
  const start = Date.parse(meta.startedAt);
  const end = Date.parse(endedAt);
  return {
    runId: meta.runId,
    command: meta.command,
    mode: meta.mode,
    startedAt: meta.startedAt,
    endedAt,
    durationMs: Number.isFinite(start) && Number.isFinite(end) ? Math.max(0, end - start) : 0,
    hosts: sorted,
    counts: countOutcomes(sorted),
    exitCode: meta.exitCode ?? (sorted.every((x) => isDone(x.outcome)) ? 0 : 1),
  };
}

function latest(stamps: Array<string | null>): string {
  let best = stamps[0] ?? new Date(0).toISOString();
  for (const s of stamps) if (s && Date.parse(s) > Date.parse(best)) best = s;
  return best;
}
