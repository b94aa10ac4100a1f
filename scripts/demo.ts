// `npm run demo`: the README's first command. Builds (or reuses from the cache) a Debian
// bookworm VM with GRUB and a small balenaOS-shaped image, then migrates the VM with the
// real CLI — live progress on a terminal — and shows what the VM runs afterwards.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { sshRun } from '../test/vm/harness/index.ts';
import { startScenario } from '../test/vm/scenario.ts';

const repo = join(import.meta.dirname, '..');

function say(line: string): void {
  process.stderr.write(`\x1b[1mdemo:\x1b[0m ${line}\n`);
}

say(
  'preparing the Debian VM and the balenaOS test image (cached after the first time; the first build takes a few minutes)',
);
const scenario = await startScenario('demo');
let code = 1;
try {
  say(`booting Debian in QEMU (TCG); SSH forwarded to 127.0.0.1:${scenario.sshPort}`);
  await scenario.vm.waitForTcpBanner(22, 240_000);
  say('Debian is up. Running: balena-migrate check, then balena-migrate run');
  const cli = (args: string[]) =>
    new Promise<number>((resolve) => {
      const child = spawn(process.execPath, [join(repo, 'bin/balena-migrate.js'), ...args], {
        stdio: 'inherit',
        env: { ...process.env, SSH_AUTH_SOCK: '' },
      });
      child.on('close', (c) => resolve(c ?? 1));
    });
  // The run directories go to ./runs (not the scenario's temp dir) so report.html stays.
  const runsDir = join(repo, 'runs');
  await cli(['check', ...scenario.cliArgs('root'), '--runs-dir', runsDir]);
  const t0 = Date.now();
  code = await cli(['run', ...scenario.cliArgs('root'), '--runs-dir', runsDir]);
  say(`run finished with exit code ${code} after ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  if (code === 0) {
    const osRelease = await sshRun(
      {
        port: scenario.balenaPort,
        user: 'root',
        privateKeyPath: scenario.base.sshKeyPath,
        hostPublicKey: scenario.image.hostPublicKey,
      },
      'grep PRETTY_NAME /etc/os-release; ls /mnt/boot',
    );
    say(`the VM now runs:\n${osRelease}`);
  } else {
    say(`serial console tail:\n${scenario.vm.serialTail(30)}`);
  }
} finally {
  await scenario.cleanup();
}
process.exit(code);
