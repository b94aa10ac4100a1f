// The VM test bed: cached images and QEMU runners for the end-to-end tests and the demo.
// See README.md next to this file.
export {
  BALENA_BOOT_MOUNT,
  BALENA_SSH_PORT,
  type BalenaPartition,
  type BalenaTestImage,
  balenaTestImageKey,
  bootPartitionOffset,
  copyImageWithBootFiles,
  ensureBalenaTestImage,
  planBalenaPartitions,
  readBootFile,
} from './balena-image.ts';
export { pruneVmCache, vmCacheDir } from './cache.ts';
export { type BaseDisk, DEBIAN_ROOT_LABEL, debianBaseKey, ensureDebianBase } from './debian-base.ts';
export { debianUefiKey, ensureDebianUefiDisk, OVMF, type UefiDisk } from './debian-uefi.ts';
export { knownHostsLine, type SshExecResult, type SshTarget, sshExec, sshRun, waitForSsh } from './ssh.ts';
export {
  createOverlay,
  freePort,
  imageFormat,
  type StartVmOptions,
  startVm,
  type Vm,
  type VmForward,
  writeImageOverDisk,
} from './vm.ts';
