// Builds (or finds in the cache) the VM images the end-to-end tests and the demo boot, and
// prints where they are. Needs root on the first build.
//   tsx scripts/build-vm.ts            base disk and balena test image
//   tsx scripts/build-vm.ts --base     the base Debian disk only
//   tsx scripts/build-vm.ts --uefi     also the GPT/UEFI Debian disk (harness/debian-uefi.ts)
//   tsx scripts/build-vm.ts --prune    also delete cached builds of older builder versions
import {
  balenaTestImageKey,
  debianBaseKey,
  debianUefiKey,
  ensureBalenaTestImage,
  ensureDebianBase,
  ensureDebianUefiDisk,
  pruneVmCache,
  vmCacheDir,
} from '../test/vm/harness/index.ts';

const started = Date.now();
const base = await ensureDebianBase();
console.log(JSON.stringify({ base }, null, 2));
if (!process.argv.includes('--base')) {
  const balena = await ensureBalenaTestImage();
  console.log(JSON.stringify({ balena }, null, 2));
}
if (process.argv.includes('--uefi')) {
  const { base: _same, ...uefi } = await ensureDebianUefiDisk();
  console.log(JSON.stringify({ uefi }, null, 2));
}
if (process.argv.includes('--prune')) {
  const keep = [
    `debian-base-${debianBaseKey()}`,
    `balena-test-${balenaTestImageKey()}`,
    `debian-uefi-${debianUefiKey()}`,
  ];
  const removed = await pruneVmCache(['debian-base', 'balena-test', 'debian-uefi'], keep);
  console.log(`pruned from ${vmCacheDir()}: ${removed.length > 0 ? removed.join(', ') : 'nothing'}`);
}
console.log(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
