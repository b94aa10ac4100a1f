// Fleet overhead: `balena-migrate check` over N loopback sshd hosts against `ansible all -m
// setup` over the same hosts, same concurrency. Both log in as root with the same key and a
// prepared known_hosts. The CLI's wall time includes its own start (tsx loads the TypeScript).
// Where the time goes is measured too: CPU of the orchestrator process (GNU time) and of the
// sshd side (the listeners' reaped children: handshakes, shells, the probe).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ansibleIniInventory,
  CLI,
  type FleetHosts,
  fleetFlags,
  fleetSpecs,
  nativeInventory,
  REPO_ROOT,
  readHostReports,
  startFleetHosts,
} from '../helpers/fleet-hosts.ts';
import { cpuSecondsOf, log, secondsSince } from './machine.ts';

export interface FleetRun {
  seconds: number;
  exitCode: number | null;
  /** outcome → hosts */
  outcomes: Record<string, number>;
  /** CPU seconds of the tool's own processes (GNU time: user + sys, children included) */
  toolCpuSeconds: number;
  /** peak RSS of the tool's main process, MiB */
  toolMaxRssMiB: number;
  /** CPU seconds the hosts' sshd spent (sessions, shells, commands) */
  hostsCpuSeconds: number;
}

export interface FleetBenchResult {
  hosts: number;
  concurrency: number;
  ours: FleetRun;
  ansible: FleetRun | null;
  /** ansible seconds / ours seconds */
  ratio: number | null;
  hostsPerMinute: number;
  /** the orchestrator's own CPU per host, ms: what one core could sustain if the hosts were elsewhere */
  oursCpuMsPerHost: number;
  hostsCpuMsPerHostOurs: number;
  hostsCpuMsPerHostAnsible: number | null;
}

/** Let the hosts' sshd reap the sessions that just ended, so their CPU is counted. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 500));
}

/** Ansible leaves its ssh ControlMaster connections open (ControlPersist): close them. */
function closeControlMasters(dir: string): void {
  for (const name of readdirSync(dir)) {
    spawnSync('ssh', ['-S', join(dir, name), '-O', 'exit', 'ignored'], { stdio: 'ignore' });
  }
}

function hostsCpu(fleet: FleetHosts): number {
  return fleet.hosts.reduce((sum, h) => sum + (h.pid ? cpuSecondsOf(h.pid) : 0), 0);
}

/** Runs a command under GNU time; returns wall seconds, exit code, and time's figures. */
function timed(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; output: string }) {
  const timeFile = `${opts.output}.time`;
  const start = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-o', timeFile, '-f', '%U %S %M', cmd, ...args], {
    cwd: opts.cwd,
    env: opts.env,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  const seconds = secondsSince(start);
  writeFileSync(opts.output, `${r.stdout}\n--- stderr ---\n${r.stderr}`);
  const [user = 0, sys = 0, rssKb = 0] = (readFileSync(timeFile, 'utf8').trim().split('\n').pop() ?? '')
    .split(' ')
    .map(Number);
  return { seconds, exitCode: r.status, stdout: r.stdout, cpu: user + sys, rssMiB: rssKb / 1024 };
}

export async function runFleetBench(opts: {
  hosts: number;
  concurrency: number;
  workDir: string;
  ansible: boolean;
}): Promise<FleetBenchResult> {
  mkdirSync(opts.workDir, { recursive: true });
  log(`fleet: starting ${opts.hosts} sshd hosts`);
  const fleet = await startFleetHosts(fleetSpecs('host', opts.hosts), { logLevel: 'ERROR' });
  try {
    const runsDir = join(opts.workDir, 'runs');
    const inventory = join(opts.workDir, 'inventory.yml');
    writeFileSync(inventory, nativeInventory(fleet));
    const env = { ...process.env };
    delete env.SSH_AUTH_SOCK;

    log(`fleet: balena-migrate check over ${opts.hosts} hosts, --concurrency ${opts.concurrency}`);
    let before = hostsCpu(fleet);
    const check = timed(
      process.execPath,
      [
        CLI,
        'check',
        '-i',
        inventory,
        ...fleetFlags(fleet, runsDir),
        '--concurrency',
        String(opts.concurrency),
        '--json',
      ],
      { cwd: REPO_ROOT, env, output: join(opts.workDir, 'check.log') },
    );
    await settle();
    const oursHostsCpu = hostsCpu(fleet) - before;
    const made = existsSync(runsDir) ? readdirSync(runsDir) : [];
    const runDir = made.length === 1 ? join(runsDir, made[0]!) : undefined;
    if (!runDir) throw new Error(`check wrote no run directory (exit ${check.exitCode}); see its log`);
    const outcomes: Record<string, number> = {};
    if (runDir)
      for (const r of readHostReports(runDir).values()) outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
    const ours: FleetRun = {
      seconds: check.seconds,
      exitCode: check.exitCode,
      outcomes,
      toolCpuSeconds: check.cpu,
      toolMaxRssMiB: check.rssMiB,
      hostsCpuSeconds: oursHostsCpu,
    };
    log(`fleet: check took ${ours.seconds.toFixed(1)} s: ${JSON.stringify(outcomes)}`);

    let ansible: FleetRun | null = null;
    if (opts.ansible) {
      const dir = join(opts.workDir, 'ansible');
      mkdirSync(join(dir, 'cp'), { recursive: true });
      const ini = join(dir, 'inventory.ini');
      writeFileSync(ini, ansibleIniInventory(fleet));
      log(`fleet: ansible all -m setup -f ${opts.concurrency} over the same hosts`);
      before = hostsCpu(fleet);
      const run = timed('ansible', ['all', '-i', ini, '-m', 'setup', '-f', String(opts.concurrency), '-o'], {
        cwd: dir,
        output: join(opts.workDir, 'ansible.log'),
        env: {
          ...env,
          ANSIBLE_CONFIG: join(dir, 'none.cfg'),
          ANSIBLE_HOME: dir,
          ANSIBLE_LOCAL_TEMP: join(dir, 'tmp'),
          ANSIBLE_SSH_CONTROL_PATH_DIR: join(dir, 'cp'),
          // Ansible's own defaults plus our known_hosts (host keys are checked, as ours does).
          ANSIBLE_SSH_ARGS: `-C -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=${fleet.knownHostsFile}`,
          // Spares Ansible its interpreter discovery round trip: the baseline at its quickest.
          ANSIBLE_PYTHON_INTERPRETER: '/usr/bin/python3',
          ANSIBLE_NOCOLOR: '1',
        },
      });
      closeControlMasters(join(dir, 'cp'));
      await settle();
      const ok = (run.stdout.match(/ \| SUCCESS /g) ?? []).length;
      const unreachable = (run.stdout.match(/ \| UNREACHABLE!/g) ?? []).length;
      const failed = (run.stdout.match(/ \| FAILED!/g) ?? []).length;
      ansible = {
        seconds: run.seconds,
        exitCode: run.exitCode,
        outcomes: { ok, unreachable, failed },
        toolCpuSeconds: run.cpu,
        toolMaxRssMiB: run.rssMiB,
        hostsCpuSeconds: hostsCpu(fleet) - before,
      };
      log(`fleet: ansible took ${ansible.seconds.toFixed(1)} s: ${JSON.stringify(ansible.outcomes)}`);
    }
    const result: FleetBenchResult = {
      hosts: opts.hosts,
      concurrency: opts.concurrency,
      ours,
      ansible,
      ratio: ansible ? ansible.seconds / ours.seconds : null,
      hostsPerMinute: (opts.hosts / ours.seconds) * 60,
      oursCpuMsPerHost: (ours.toolCpuSeconds / opts.hosts) * 1000,
      hostsCpuMsPerHostOurs: (ours.hostsCpuSeconds / opts.hosts) * 1000,
      hostsCpuMsPerHostAnsible: ansible ? (ansible.hostsCpuSeconds / opts.hosts) * 1000 : null,
    };
    writeFileSync(join(opts.workDir, 'fleet.json'), JSON.stringify(result, null, 2));
    return result;
  } finally {
    await fleet.stop();
  }
}
