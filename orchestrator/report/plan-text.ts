// What `check` prints for each host: the plan in sentences (where every file goes, what is
// backed up, how the one-shot boot is set) or the refusal reasons. Reads the printable plan
// stored in the host's report; payload bytes never appear, only sizes and hashes.
import type { HostReport } from './host-report.ts';

interface PrintablePlan {
  deviceType: string;
  bootManager: string;
  installDisk: { name: string; sizeBytes: number };
  workDir: string;
  payload: { role: string; remotePath: string; sizeBytes: number; sha256: string; mode: number }[];
  steps: { kind: string; description: string; path?: string; to?: string; argv?: string[] }[];
  oneShot: { mechanism: string; argv: string[] };
  stage2ConfigPath: string;
  ram: { neededBytes: number; availableBytes: number };
  notes: string[];
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function target(step: PrintablePlan['steps'][number]): string {
  if (step.kind === 'exec') {
    const argv = (step.argv ?? []).join(' ');
    return step.description.includes(argv) ? '' : ` (${argv})`;
  }
  const path = step.path ?? step.to;
  return path && !step.description.includes(path) ? ` → ${path}` : '';
}

export function renderPlanText(report: HostReport): string {
  const head = `${report.host} (${report.address}:${report.port}): ${report.outcome}`;
  if (report.outcome === 'refused') {
    return [head, ...report.refusalReasons.map((r) => `  ✗ ${r}`)].join('\n');
  }
  const plan = report.plan as PrintablePlan | null;
  if (!plan) {
    return report.error ? `${head}\n  ${report.error.message}\n  next: ${report.error.nextStep}` : head;
  }
  const lines = [
    head,
    `  device type ${plan.deviceType}, boot manager ${plan.bootManager}, install disk ${plan.installDisk.name} (${mib(plan.installDisk.sizeBytes)})`,
    `  RAM for stage2: needs ${mib(plan.ram.neededBytes)}, MemAvailable ${mib(plan.ram.availableBytes)}`,
    `  upload to ${plan.workDir}:`,
    ...plan.payload.map(
      (f) =>
        `    ${f.role.padEnd(12)} ${f.remotePath} (${mib(f.sizeBytes)}, mode ${f.mode.toString(8)}, sha256 ${f.sha256.slice(0, 12)}…)`,
    ),
    '  boot setup (one journaled transaction; each step has an undo):',
    ...plan.steps.map((s, i) => `    ${String(i + 1).padStart(2)}. ${s.description}${target(s)}`),
    `  one-shot: ${plan.oneShot.mechanism} (${plan.oneShot.argv.join(' ')}); stage2 settings in ${plan.stage2ConfigPath}`,
    ...plan.notes.map((n) => `  note: ${n}`),
  ];
  return lines.join('\n');
}
