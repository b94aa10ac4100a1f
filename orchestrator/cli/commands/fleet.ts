// `check` and `run`: load and validate everything on the operator's side first (a bad input
// exits 2 before any connection), then run every selected host through its pipeline.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { downloadOnly } from '../../agent/download-only.ts';
import { provisionAgentHosts, resolveAgentRun } from '../../agent/prepare.ts';
import { DEFAULT_NETWORK, withAgentWifi } from '../../agent/wifi.ts';
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
import { renderPlanText } from '../../report/plan-text.ts';
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
        vars: h.vars,
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
  const agentLog = (message: string) =>
    process.stderr.write(
      flags.json
        ? `${JSON.stringify({ at: new Date().toISOString(), type: 'agent', message })}\n`
        : `${message}\n`,
    );
  if (flags.downloadOnly) {
    const hosts = flags.inventory || flags.host?.length ? loadTargets(flags, config) : [];
    return downloadOnly(config, hosts, { log: agentLog, print: (line) => process.stdout.write(`${line}\n`) });
  }
  const targets = loadTargets(flags, config);
  const settings = runSettingsFrom(config, command);
  const waves = flags.waves ? parseWaves(flags.waves) : null;
  const maxFailures = flags.maxFailures ? parseMaxFailures(flags.maxFailures) : undefined;

  // Everything local is measured before the first connection: a bad image exits 2 here.
  const resources = new RunResources();
  // Agent mode: the backend, the fleet and every image are resolved and verified first.
  const agentRun =
    config.mode === 'agent' ? await resolveAgentRun({ config, targets, resources, log: agentLog }) : null;
  const images = new Set([settings.image, ...targets.flatMap((t) => (t.image ? [t.image] : []))]);
  const configs = new Set([
    settings.configJson,
    ...targets.flatMap((t) => (t.configJson ? [t.configJson] : [])),
  ]);
  if (!agentRun) {
    await Promise.all([...images].map((p) => resources.image(p)));
    // and which device type each image is for (its device-type.json), checked per host later
    await Promise.all([...images].map((p) => resources.imageDeviceType(p)));
    await Promise.all([...configs].map((p) => resources.configJson(p)));
  }

  const runDir = flags.resume ? resolve(flags.resume) : createRunDir(config.run.runsDir, command);
  const startedAt = new Date();
  const meta = {
    runId: runDir.split('/').pop()!,
    command,
    mode: config.mode,
    startedAt: startedAt.toISOString(),
    endedAt: null,
    exitCode: null,
  };
  writeRunMeta(runDir, meta);
  // Agent mode: each host's device in the fleet and its own config.json, before any host runs.
  const agentHosts = agentRun
    ? await provisionAgentHosts(agentRun, targets, {
        command,
        runDir,
        resume: Boolean(flags.resume),
        log: agentLog,
      })
    : null;
  // agent.wifiSsid reaches the devices as a NetworkManager keyfile, like network.extraFiles
  if (agentRun?.wifi)
    settings.network = withAgentWifi(settings.network ?? DEFAULT_NETWORK, agentRun.wifi, runDir);

  const display = createProgressDisplay({ json: flags.json ?? false });
  const prompts = {
    askPassphrase: (keyPath: string) => askHidden(`passphrase for ${keyPath}: `),
    sudoPassword: once(() => askHidden('sudo password for the hosts: ')),
  };
  const written = new Map<string, string>();
  let outcome: Awaited<ReturnType<typeof runFleet<HostTarget>>>;
  try {
    outcome = await runFleet(
      targets,
      {
        command,
        // pretend and stage2.pretend end hosts `ready`: that is their success
        rehearsal: config.mode === 'pretend' || config.stage2.pretend,
        concurrency: config.run.concurrency,
        waves,
        ...(maxFailures ? { maxFailures } : {}),
        runDir,
        events: display.sink,
        resume: Boolean(flags.resume),
      },
      async (target, ctx) => {
        const prepared = agentHosts?.get(target.name);
        const report = await runHost({
          target: prepared?.target ?? target,
          settings,
          resources,
          prompts,
          ctx,
          ...(prepared ? { agent: prepared.agent } : {}),
        });
        report.wave = waves ? ctx.wave : null;
        await writeHostReport(runDir, report);
        written.set(report.host, JSON.stringify(report));
        return report;
      },
    );
  } finally {
    display.stop();
  }
  // Reports the runner made itself (not-started, a pipeline that threw) are not on disk yet;
  // the others are, and each write costs an fsync.
  await Promise.all(
    outcome.reports
      .filter((report) => written.get(report.host) !== JSON.stringify(report))
      .map((report) => writeHostReport(runDir, report)),
  );
  const endedAt = new Date();
  writeRunMeta(runDir, { ...meta, endedAt: endedAt.toISOString(), exitCode: outcome.exitCode });
  const fleet = buildFleetReport(
    { ...meta, endedAt: endedAt.toISOString(), exitCode: outcome.exitCode },
    outcome.reports,
  );
  const paths = writeFleetReports(runDir, fleet);
  if (command === 'check') {
    // check's job is to show the plan (or the reasons) for every host.
    for (const report of outcome.reports) {
      if (report.outcome !== 'not-started') process.stdout.write(`${renderPlanText(report)}\n\n`);
    }
  }
  process.stdout.write(
    `${renderSummaryTable(fleet, { color: Boolean(process.stdout.isTTY), width: process.stdout.columns ?? 120 })}\n`,
  );
  process.stdout.write(`reports: ${paths.html}\n         ${paths.markdown}\n`);
  if (outcome.failures > 0 || outcome.counts['not-started']) {
    process.stdout.write(`retry the hosts that did not make it with: --limit @${outcome.failedHostsFile}\n`);
  }
  return outcome.exitCode;
}
