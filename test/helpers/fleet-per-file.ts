// A fleet of loopback sshd hosts (fleet-hosts.ts) for one test file: started before its
// tests, stopped after them, with a scratch directory for inventories and run directories
// that goes with it. Kept apart from fleet-hosts.ts, which the benchmarks use outside vitest.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import {
  type FleetHostSpec,
  type FleetHosts,
  type InventoryGroups,
  nativeInventory,
  startFleetHosts,
} from './fleet-hosts.ts';

export interface FleetPerFile {
  /** the hosts; set once the file's beforeAll ran */
  readonly fleet: FleetHosts;
  /** the scratch directory, removed after the file's tests */
  readonly dir: string;
  /** DIR/inventory.yml: every host, in the groups given (our format) */
  readonly inventory: string;
}

/** Starts SPECS for the tests of the calling file (label names its scratch directory). */
export function fleetPerFile(
  label: string,
  specs: FleetHostSpec[],
  groups: InventoryGroups = {},
): FleetPerFile {
  let fleet: FleetHosts | undefined;
  let dir: string | undefined;
  beforeAll(async () => {
    fleet = await startFleetHosts(specs);
    dir = mkdtempSync(join(tmpdir(), `bm-fleet-${label}-`));
    writeFileSync(join(dir, 'inventory.yml'), nativeInventory(fleet, groups));
  });
  afterAll(async () => {
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the fleet is not started yet: use it inside a test or a hook');
    return value;
  };
  return {
    get fleet() {
      return ready(fleet);
    },
    get dir() {
      return ready(dir);
    },
    get inventory() {
      return join(ready(dir), 'inventory.yml');
    },
  };
}
