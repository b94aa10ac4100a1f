// The benchmark figures as a terminal table and as test/bench/RESULTS.md.
import type { FleetBenchResult } from './fleet.ts';
import type { MachineFacts } from './machine.ts';
import type { MemoryBenchResult } from './memory.ts';
import type { UploadBenchResult } from './upload.ts';

export interface BenchResults {
  upload: UploadBenchResult | null;
  fleet: FleetBenchResult | null;
  memory: MemoryBenchResult | null;
}

interface Row {
  figure: string;
  value: string;
  goal: string;
  met: '' | 'yes' | 'NO';
}

const f0 = (n: number) => n.toFixed(0);
const f1 = (n: number) => n.toFixed(1);
const f2 = (n: number) => n.toFixed(2);

function rows(r: BenchResults): Row[] {
  const out: Row[] = [];
  const { upload: u, fleet: fl, memory: m } = r;
  if (u) {
    const label = `${u.sizeMiB} MiB upload`;
    out.push(
      { figure: `${label}: OpenSSH scp`, value: `${f0(u.scp)} MB/s`, goal: '', met: '' },
      {
        figure: `${label}: scp, then sha256sum on the host`,
        value: `${f0(u.scpThenSha256)} MB/s`,
        goal: '',
        met: '',
      },
      {
        figure: `${label}: SshSession.upload (verified on the host)`,
        value: `${f0(u.ours)} MB/s`,
        goal: '',
        met: '',
      },
      {
        figure: `${label}: ours, transfer part only`,
        value: `${f0(u.oursTransfer)} MB/s`,
        goal: '',
        met: '',
      },
      {
        figure: 'upload ratio ours / scp',
        value: `${f2(u.ratio)}x`,
        goal: '>= 1.0x',
        met: u.ratio >= 1 ? 'yes' : 'NO',
      },
      {
        figure: 'upload ratio ours / (scp + sha256sum)',
        value: `${f2(u.ours / u.scpThenSha256)}x`,
        goal: '',
        met: '',
      },
      { figure: 'orchestrator CPU for the upload', value: `${f2(u.oursCpuSeconds)} s`, goal: '', met: '' },
    );
  }
  if (fl) {
    const outcomes = Object.entries(fl.ours.outcomes)
      .map(([k, v]) => `${v} ${k}`)
      .join(', ');
    out.push(
      {
        figure: `check, ${fl.hosts} hosts, --concurrency ${fl.concurrency}`,
        value: `${f1(fl.ours.seconds)} s (${outcomes}; exit ${fl.ours.exitCode})`,
        goal: '',
        met: '',
      },
      {
        figure: 'check: hosts per minute',
        value: f0(fl.hostsPerMinute),
        goal: '>= 1500',
        met: fl.hostsPerMinute >= 1500 ? 'yes' : 'NO',
      },
    );
    if (fl.ansible) {
      const a = fl.ansible.outcomes;
      out.push(
        {
          figure: `ansible all -m setup -f ${fl.concurrency}, same hosts`,
          value: `${f1(fl.ansible.seconds)} s (${a.ok} ok, ${a.unreachable} unreachable, ${a.failed} failed)`,
          goal: '',
          met: '',
        },
        {
          figure: 'fleet ratio ansible / ours',
          value: `${f1(fl.ratio ?? 0)}x`,
          goal: '>= 5x',
          met: (fl.ratio ?? 0) >= 5 ? 'yes' : 'NO',
        },
      );
    }
    out.push(
      {
        figure: 'check: orchestrator CPU per host',
        value: `${f1(fl.oursCpuMsPerHost)} ms (peak RSS ${f0(fl.ours.toolMaxRssMiB)} MiB)`,
        goal: '',
        met: '',
      },
      {
        figure: 'check: host-side (sshd, shells, probe) CPU per host',
        value: `${f1(fl.hostsCpuMsPerHostOurs)} ms`,
        goal: '',
        met: '',
      },
    );
    if (fl.ansible) {
      out.push(
        {
          figure: 'ansible: its own CPU per host',
          value: `${f1((fl.ansible.toolCpuSeconds / fl.hosts) * 1000)} ms`,
          goal: '',
          met: '',
        },
        {
          figure: 'ansible: host-side CPU per host',
          value: `${f1(fl.hostsCpuMsPerHostAnsible ?? 0)} ms`,
          goal: '',
          met: '',
        },
      );
    }
  }
  if (m) {
    out.push(
      {
        figure: `peak RSS pushing ${m.sizeMiB} MiB to ${m.hosts} hosts at once`,
        value:
          `${f0(m.peakRssMiB)} MiB = ${f0((m.peakRssMiB * 1048576) / 1e6)} MB (sampled ${f0(m.sampledPeakRssMiB)} MiB; ` +
          `${f0(m.rssAtStartMiB)} MiB before the first connection; at the peak JS heap ${m.atPeak.heapUsed} MiB, ` +
          `buffers ${m.atPeak.arrayBuffers} MiB)`,
        goal: '<= 200 MB',
        met: (m.peakRssMiB * 1048576) / 1e6 <= 200 ? 'yes' : 'NO',
      },
      {
        figure: `  ... in`,
        value: `${f1(m.seconds)} s, ${f0(m.aggregateMBps)} MB/s over all hosts`,
        goal: '',
        met: '',
      },
    );
  }
  return out;
}

export function renderTable(r: BenchResults): string {
  const all = rows(r);
  const header: Row = { figure: 'figure', value: 'value', goal: 'goal', met: '' };
  const w = (k: keyof Row) => Math.max(...[header, ...all].map((row) => row[k].length));
  const line = (row: Row) =>
    `${row.figure.padEnd(w('figure'))}  ${row.value.padEnd(w('value'))}  ${row.goal.padEnd(w('goal'))}  ${row.met}`.trimEnd();
  return [
    line(header),
    line({
      figure: '-'.repeat(w('figure')),
      value: '-'.repeat(w('value')),
      goal: '-'.repeat(w('goal')),
      met: '',
    }),
    ...all.map(line),
  ].join('\n');
}

export function renderResults(input: BenchResults & { facts: MachineFacts; loadAtEnd: number }): string {
  const { facts } = input;
  const md = [
    '# Benchmark results',
    '',
    'Written by `npm run bench` (scripts/bench.ts); every figure comes from one run on the machine below.',
    'The hosts are real OpenSSH sshd processes on loopback on the same machine, so the orchestrator,',
    'the hosts and (for the fleet figure) Ansible share its CPUs.',
    '',
    `- date: ${facts.date}`,
    `- CPUs (nproc): ${facts.cpus} (${facts.cpuModel})`,
    `- memory: ${facts.memTotalMiB} MiB`,
    `- kernel ${facts.kernel}, Node.js ${facts.node}, ${facts.openssh}, ${facts.ansible}`,
    `- load average (1 min) at start ${f2(facts.loadAtStart)}, at end ${f2(input.loadAtEnd)}: other work on the machine lowers every figure`,
    '',
    '| figure | value | goal | met |',
    '| --- | --- | --- | --- |',
    ...rows(input).map((r) => `| ${r.figure} | ${r.value} | ${r.goal} | ${r.met} |`),
    '',
  ];
  md.push(
    'How to read them:',
    '',
    '- "host-side CPU" is what the hosts spend (sshd, shells, the probe): on a real fleet every device pays',
    '  its own; here it comes out of the same 2 cores, so hosts per minute is bounded by it. The',
    "  orchestrator's own CPU per host is the figure that scales with fleet size.",
    '- The upload goes through both ends on this machine: the orchestrator (ssh2, in JavaScript), sshd,',
    '  and the host hashing the file as it arrives. scp verifies nothing, so the last ratio is the like-for-like one.',
    '- Peak RSS includes ~80 MiB that any process started through tsx (as bin/balena-migrate.js is) has before',
    '  its first connection.',
    '',
  );
  if (input.upload) {
    md.push(
      `Upload samples (MB/s, ${input.upload.rounds} rounds, alternating): ` +
        Object.entries(input.upload.samples)
          .map(([k, v]) => `${k} ${v.map(f0).join(' / ')}`)
          .join('; '),
      '',
    );
  }
  return `${md.join('\n')}\n`;
}
