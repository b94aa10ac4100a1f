// `report RUNDIR`: renders a run's reports again from its per-host JSON.
import { existsSync } from 'node:fs';
import { ConfigError } from '../../errors.ts';
import { readFleetReport, writeFleetReports } from '../../report/run-dir.ts';
import { renderSummaryTable } from '../../report/summary-table.ts';

export function reportCommand(runDir: string): number {
  if (!existsSync(runDir)) {
    throw new ConfigError(`no run directory at ${runDir}`, { file: runDir }, 'pass a directory under runs/');
  }
  const fleet = readFleetReport(runDir);
  const paths = writeFleetReports(runDir, fleet);
  process.stdout.write(
    `${renderSummaryTable(fleet, { color: Boolean(process.stdout.isTTY), width: process.stdout.columns ?? 120 })}\n`,
  );
  process.stdout.write(`reports: ${paths.html}\n         ${paths.markdown}\n         ${paths.junit}\n`);
  return fleet.exitCode;
}
