// `npm run bench`: the fleet-scale figures of issue 3 on this machine, against real OpenSSH
// sshd instances on loopback. Not part of `npm test` (it takes minutes and writes ~20 GiB).
//
//   npm run bench                          everything, written to test/bench/RESULTS.md
//   npm run bench -- upload fleet          some of: upload, fleet, memory
//   npm run bench -- --hosts 50 --no-ansible --upload-mib 128 --memory-mib 256 --no-write
//
// Needs root (sshd), OpenSSH's scp, GNU time, and Debian's ansible for the fleet baseline.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { tuneV8ForTransfers } from '../orchestrator/cli/v8-tuning.ts';
import { type FleetBenchResult, runFleetBench } from '../test/bench/fleet.ts';
import { log, type MachineFacts, machineFacts } from '../test/bench/machine.ts';
import { type MemoryBenchResult, runMemoryBench } from '../test/bench/memory.ts';
import { renderResults, renderTable } from '../test/bench/results.ts';
import { runUploadBench, type UploadBenchResult } from '../test/bench/upload.ts';
import { REPO_ROOT } from '../test/helpers/fleet-hosts.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    hosts: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '50' },
    'upload-mib': { type: 'string', default: '512' },
    rounds: { type: 'string', default: '3' },
    'memory-hosts': { type: 'string', default: '20' },
    'memory-mib': { type: 'string', default: '1024' },
    'no-ansible': { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
    'work-dir': { type: 'string' },
  },
});
// the upload runs in this process: with the CLI's V8 settings
tuneV8ForTransfers();
const which = new Set(positionals.length ? positionals : ['upload', 'fleet', 'memory']);
for (const w of which) {
  if (!['upload', 'fleet', 'memory'].includes(w)) {
    process.stderr.write(`unknown benchmark ${w}: choose from upload, fleet, memory\n`);
    process.exit(2);
  }
}
if (process.getuid?.() !== 0) {
  process.stderr.write('the benchmarks start sshd and log in as root: run them as root\n');
  process.exit(2);
}

const workDir = values['work-dir'] ?? mkdtempSync('/var/tmp/bm-bench-');
const facts: MachineFacts = machineFacts();
log(
  `machine: ${facts.cpus} CPUs, ${facts.memTotalMiB} MiB, load ${facts.loadAtStart.toFixed(2)}; work dir ${workDir}`,
);

let upload: UploadBenchResult | null = null;
let fleet: FleetBenchResult | null = null;
let memory: MemoryBenchResult | null = null;
try {
  if (which.has('upload')) {
    upload = await runUploadBench({
      sizeMiB: Number(values['upload-mib']),
      rounds: Number(values.rounds),
      workDir: join(workDir, 'upload'),
    });
  }
  if (which.has('fleet')) {
    fleet = await runFleetBench({
      hosts: Number(values.hosts),
      concurrency: Number(values.concurrency),
      workDir: join(workDir, 'fleet'),
      ansible: !values['no-ansible'],
    });
  }
  if (which.has('memory')) {
    memory = await runMemoryBench({
      hosts: Number(values['memory-hosts']),
      sizeMiB: Number(values['memory-mib']),
      workDir: join(workDir, 'memory'),
    });
  }
} finally {
  if (!values['work-dir']) rmSync(workDir, { recursive: true, force: true });
}

const loadAtEnd = (await import('node:os')).loadavg()[0] ?? 0;
process.stdout.write(`\n${renderTable({ upload, fleet, memory })}\n`);
if (!values['no-write']) {
  const file = join(REPO_ROOT, 'test/bench/RESULTS.md');
  writeFileSync(file, renderResults({ facts, loadAtEnd, upload, fleet, memory }));
  process.stdout.write(`\nwritten to ${relative(process.cwd(), file)}\n`);
}
