// The public face of configuration loading: the migration config, inventories in every
// supported format, host selection, and the operator's ssh config.
export type { Become } from './fields.ts';
export { type LoadInventoryOptions, loadInventory } from './inventory.ts';
export { HOST_DEFAULTS } from './inventory-resolve.ts';
export type { Inventory, InventoryFormat, InventoryGroup, JumpHop, ResolvedHost } from './inventory-types.ts';
export { IMAGE_SUFFIXES } from './local-files.ts';
export {
  applyConfigOverrides,
  type ConfigOverrides,
  defaultMigrationConfig,
  loadMigrationConfig,
  type MigrationConfig,
  type OverrideOptions,
} from './migration-config.ts';
export { CONFIG_DEFAULTS, FAIL_MODES, type FailMode, MODES, type Mode } from './migration-config-schema.ts';
export { selectHosts } from './select-hosts.ts';
export type { SourceLocation } from './source-location.ts';
export {
  loadSshConfig,
  mergeConnectionSettings,
  NO_SSH_CONFIG,
  type SshConfigLookup,
  type SshHostSettings,
} from './ssh-config.ts';
