// The balena-migrate command line. Commands return an exit code; the one catch at the
// bottom maps every error to its exit code and a sentence for the operator.
import { Command, CommanderError } from 'commander';
import { addAgentFlags } from '../agent/flags.ts';
import { ExitCode } from '../errors.ts';
import { type OfflineFlags, offlineCheckCommand } from './commands/check-offline.ts';
import { fleetCommand } from './commands/fleet.ts';
import { probeCommand } from './commands/probe.ts';
import { reportCommand } from './commands/report.ts';
import { exitCodeFor, formatError } from './exit.ts';
import { addFleetFlags, addMigrationFlags, addTargetFlags, type CommonFlags } from './options.ts';
import { tuneV8ForTransfers } from './v8-tuning.ts';

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('balena-migrate')
    .description('Migrate a fleet of running devices to balenaOS over SSH')
    .version('0.1.0')
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');

  const check = program
    .command('check')
    .description(
      'connect, probe and plan every selected host; print the plan or the refusal; change nothing',
    );
  addTargetFlags(check);
  addMigrationFlags(check);
  addFleetFlags(check);
  addAgentFlags(check);
  const collectAll = (value: string, previous: string[] = []) => [...previous, value];
  check
    .option(
      '--facts <file>',
      'plan from facts saved by `probe HOST -o FILE`, without connecting (repeatable)',
      collectAll,
    )
    .option(
      '--sysroot <dir>',
      'plan a directory tree (a copy or a mounted image of a host) as if it were one (repeatable)',
      collectAll,
    )
    .option(
      '--modules-dir <dir>',
      "with --facts/--sysroot: the host's /lib/modules/RELEASE, for the initramfs",
    );
  check.action(async (flags: OfflineFlags) =>
    setExit(
      await (flags.facts?.length || flags.sysroot?.length
        ? offlineCheckCommand(flags)
        : fleetCommand('check', flags)),
    ),
  );

  const run = program
    .command('run')
    .description('migrate every selected host: upload, set up a one-time boot into stage2, reboot, verify');
  addTargetFlags(run);
  addMigrationFlags(run);
  addFleetFlags(run);
  addAgentFlags(run);
  run.action(async (flags: CommonFlags) => setExit(await fleetCommand('run', flags)));

  const probe = program
    .command('probe <host>')
    .description("print or save a host's facts (an inventory name or [user@]address[:port])")
    .option('-o, --output <file>', 'write the facts as JSON to this file');
  addTargetFlags(probe);
  addMigrationFlags(probe);
  probe.action(async (host: string, flags: CommonFlags & { output?: string }) =>
    setExit(await probeCommand(host, flags)),
  );

  program
    .command('report <rundir>')
    .description("render a run's reports again (summary.md, report.html, junit.xml, the table)")
    .action((runDir: string) => setExit(reportCommand(runDir)));

  return program;
}

export async function main(argv: string[]): Promise<number> {
  let code: number = ExitCode.ok;
  const program = buildProgram((c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv);
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version are "errors" to commander with exit code 0
      return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    process.stderr.write(`${formatError(err)}\n`);
    return exitCodeFor(err);
  }
}

tuneV8ForTransfers();
// The one exit point: an open socket or timer must not keep a finished run alive.
process.exit(await main(process.argv));
