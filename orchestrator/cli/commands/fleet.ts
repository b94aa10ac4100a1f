// `check` and `run`: load and validate everything on the operator's side first (a bad input
// exits 2 before any connection), then run every selected host through its pipeline.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadInventory } from '../../config/inventory.ts';
import {
  applyConfigOverrides,
  defaultMigrationConfig,
  loadMigrationConfig,
  type MigrationConfig,
} from '../../config/migration-config.ts';
import { selectHosts } from '../../config/select-hosts.ts';
import { ConfigError } from '../../errors.ts';
import { createRunDir } from '../../fleet/run-dir.ts';
import { runFleet } from '../../fleet/runner.ts';
import { parseMaxFailures, parseWaves } from '../../fleet/waves.ts';
import { RunResources } from '../../phases/resources.ts';
import { runHost } from '../../phases/run-host.ts';
import type { HostTarget } from '../../phases/settings.ts';
import { buildFleetReport } from '../../report/fleet-report.ts';
import { writeFleetReports, writeHostReport, writeRunMeta } from '../../report/run-dir.ts';
import { renderSummaryTable } from '../../report/summary-table.ts';
import { type CommonFlags, overridesFromFlags } from '../options.ts';
import { createProgressDisplay } from '../progress.ts';
import { askHidden, once } from '../prompts.ts';
import { parseHostSpec, runSettingsFrom } from '../targets.ts';

export function loadConfigWithFlags(flags: CommonFlags): MigrationConfig {
  const defaultPath = resolve('balena-migrate.yml');
  const path = flags.config ?? (existsSync(defaultPath) ? defaultPath : undefined);
  const base = path ? loadMigrationConfig(path) : defaultMigrationConfig();
  return applyConfigOverrides(base, overridesFromFlags(flags));
}

export function loadTargets(flags: CommonFlags, config: MigrationConfig): HostTarget[] {
  const targets: HostTarget[] = [];
  if (flags.inventory) {
    const inventory = loadInventory(flags.inventory, { sshConfigFile: config.ssh.sshConfigFile });
    for (const h of selectHosts(inventory, flags.limit)) {
      targets.push({
        name: h.name,
        address: h.address,
        port: h.port,
        user: h.user,
        identityFile: h.identityFile ?? null,
        jump: h.jump,
        workDir: h.workDir ?? null,
        image: h.image ?? null,
        configJson: h.configJson ?? null,
      });
    }
  } else if (flags.limit) {
    throw new ConfigError('--limit needs an inventory', { file: 'command line' }, 'add -i INVENTORY');
  }
  for (const spec of flags.host ?? []) targets.push(parseHostSpec(spec));
  if (targets.length === 0) {
    throw new ConfigError(
      'no hosts to work on',
      { file: 'command line' },
      'give an inventory with -i FILE, or a host with --host user@address[:port]',
    );
  }
  return targets;
}

export async function fleetCommand(command: 'check' | 'run', flags: CommonFlags): Promise<number> {
  const config = loadConfigWithFlags(flags);
  const targets = loadTargets(flags, config);
  const settings = runSettingsFrom(config, command);
  const waves = flags.waves ? parseWaves(flags.waves) : null;
  const maxFailures = flags.maxFailures ? parseMaxFailures(flags.maxFailures) : undefined;

  // Everything local is measured before the first connection: a bad image exits 2 here.
  const resources = new RunResources();
  const images = new Set([settings.image, ...targets.flatMap((t) => (t.image ? [t.image] : []))]);
  const configs = new Set([
    settings.configJson,
    ...targets.flatMap((t) => (t.configJson ? [t.configJson] : [])),
  ]);
  await Promise.all([...images].map((p) => resources.image(p)));
  await Promise.all([...configs].map((p) => resources.configJson(p)));

  const runDir = flags.resume ? resolve(flags.resume) : createRunDir(config.run.runsDir, command);
  const startedAt = new Date();
  const meta = {
    runId: runDir.split('/').pop()!,
    command,
    mode: settings.mode,
    startedAt: startedAt.toISOString(),
    endedAt: null,
    exitCode: null,
  };
  writeRunMeta(runDir, meta);

  const display = createProgressDisplay({ json: flags.json ?? false });
  const prompts = {
    askPassphrase: (keyPath: string) => askHidden(`passphrase for ${keyPath}: `),
    sudoPassword: once(() => askHidden('sudo password for the hosts: ')),
  };
  let outcome: Awaited<ReturnType<typeof runFleet<HostTarget>>>;
  try {
    outcome = await runFleet(
      targets,
      {
        command,
        concurrency: config.run.concurrency,
        waves,
        ...(maxFailures ? { maxFailures } : {}),
        runDir,
        events: display.sink,
        resume: Boolean(flags.resume),
      },
      async (target, ctx) => {
        const report = await runHost({ target, settings, resources, prompts, ctx });
        report.wave = waves ? ctx.wave : null;
        writeHostReport(runDir, report);
        return report;
      },
    );
  } finally {
    display.stop();
  }
  for (const report of outcome.reports) writeHostReport(runDir, report);
  const endedAt = new Date();
  writeRunMeta(runDir, { ...meta, endedAt: endedAt.toISOString(), exitCode: outcome.exitCode });
  const fleet = buildFleetReport(
    { ...meta, endedAt: endedAt.toISOString(), exitCode: outcome.exitCode },
    outcome.reports,
  );
  const paths = writeFleetReports(runDir, fleet);
  process.stdout.write(
    `${renderSummaryTable(fleet, { color: Boolean(process.stdout.isTTY), width: process.stdout.columns ?? 120 })}\n`,
  );
  process.stdout.write(`reports: ${paths.html}\n         ${paths.markdown}\n`);
  if (outcome.failures > 0 || outcome.counts['not-started']) {
    process.stdout.write(`retry the hosts that did not make it with: --limit @${outcome.failedHostsFile}\n`);
  }
  return outcome.exitCode;
}
