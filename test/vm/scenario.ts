// One migration scenario on the VM test bed: a Debian VM booted from the cached base disk
// (through a copy-on-write overlay), a known_hosts file that pins its host key, and a
// config.json whose os.sshKeys lets the test (and the orchestrator) into balenaOS afterwards.
// Shared by the end-to-end tests and `npm run demo`.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type BalenaTestImage,
  type BaseDisk,
  ensureBalenaTestImage,
  ensureDebianBase,
  knownHostsLine,
  startVm,
  type Vm,
} from './harness/index.ts';

export interface Scenario {
  base: BaseDisk;
  image: BalenaTestImage;
  vm: Vm;
  dir: string;
  knownHostsFile: string;
  configJsonPath: string;
  configJson: Record<string, unknown>;
  sshPort: number;
  balenaPort: number;
  /** flags that point `balena-migrate run` at this VM */
  cliArgs(user: 'root' | 'migrator'): string[];
  cleanup(): Promise<void>;
}

/** A secret that must never show up in logs or reports (tests look for it). */
export const SECRET_API_KEY = 'bm-test-secret-5f1d2c9a7e';

export async function startScenario(name: string, opts: { memMiB?: number } = {}): Promise<Scenario> {
  const base = await ensureDebianBase();
  const image = await ensureBalenaTestImage();
  const dir = await mkdtemp(join(tmpdir(), `bm-${name}-`));
  const vm = await startVm({
    name,
    disk: base.disk,
    memMiB: opts.memMiB ?? 1024,
    forwards: [{ guestPort: 22 }, { guestPort: image.sshPort }],
  });
  const sshPort = vm.hostPort(22);
  const balenaPort = vm.hostPort(image.sshPort);
  const knownHostsFile = join(dir, 'known_hosts');
  await writeFile(knownHostsFile, `${knownHostsLine(sshPort, base.hostPublicKey)}\n`);
  const configJson = {
    deviceType: 'genericx86-64-ext',
    applicationName: 'bm-test-fleet',
    apiKey: SECRET_API_KEY,
    os: { sshKeys: [base.sshPublicKey.trim()] },
  };
  const configJsonPath = join(dir, 'config.json');
  await writeFile(configJsonPath, `${JSON.stringify(configJson, null, 2)}\n`, { mode: 0o600 });
  return {
    base,
    image,
    vm,
    dir,
    knownHostsFile,
    configJsonPath,
    configJson,
    sshPort,
    balenaPort,
    cliArgs: (user) => [
      '--host',
      `${user}@127.0.0.1:${sshPort}`,
      '--image',
      image.imgGz,
      '--config-json',
      configJsonPath,
      '--known-hosts',
      knownHostsFile,
      '--identity',
      base.sshKeyPath,
      '--no-agent',
      '--balena-port',
      String(balenaPort),
      '--verify-timeout',
      '420',
      '--runs-dir',
      join(dir, 'runs'),
    ],
    cleanup: async () => {
      await vm.stop();
      if (!process.env.BALENA_MIGRATE_KEEP_VMS) await rm(dir, { recursive: true, force: true });
    },
  };
}
