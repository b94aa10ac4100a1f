import { describe, expect, it } from 'vitest';
import { loadInventory } from '../../orchestrator/config/inventory.ts';
import { selectHosts } from '../../orchestrator/config/select-hosts.ts';
import { configErrorFrom, fixturePath } from '../fixtures/config/config-error.ts';

const inventory = loadInventory(fixturePath('inventory/selection.yml'));
const names = (limit: string | undefined) => selectHosts(inventory, limit).map((host) => host.name);

describe('selectHosts', () => {
  it('selects every host when no limit is given', () => {
    expect(names(undefined)).toEqual(['nuc-1', 'nuc-2', 'nuc-3', 'nuc-4', 'pi-1', 'pi-2']);
    expect(names('')).toHaveLength(6);
  });

  it('selects one host by name', () => {
    expect(names('nuc-3')).toEqual(['nuc-3']);
  });

  it('selects a group with the hosts of its child groups', () => {
    expect(names('lab')).toEqual(['nuc-1', 'nuc-2', 'pi-1']);
  });

  it('selects by glob over host names', () => {
    expect(names('pi-*')).toEqual(['pi-1', 'pi-2']);
    expect(names('nuc-[13]')).toEqual(['nuc-1', 'nuc-3']);
    expect(names('nuc-?')).toHaveLength(4);
  });

  it('selects by glob over group names too', () => {
    expect(names('off*')).toEqual(['nuc-3', 'nuc-4']);
  });

  it('unites comma-separated patterns and keeps inventory order', () => {
    expect(names('pi-2,office,nuc-1')).toEqual(['nuc-1', 'nuc-3', 'nuc-4', 'pi-2']);
  });

  it('excludes hosts matched by !pattern', () => {
    expect(names('lab,!east')).toEqual(['nuc-1', 'nuc-2']);
    expect(names('nuc-*,!nuc-2')).toEqual(['nuc-1', 'nuc-3', 'nuc-4']);
  });

  it('starts from every host when only exclusions are given', () => {
    expect(names('!lab')).toEqual(['nuc-3', 'nuc-4', 'pi-2']);
  });

  it('treats all and * as every host', () => {
    expect(names('all,!office')).toEqual(['nuc-1', 'nuc-2', 'pi-1', 'pi-2']);
  });

  it('reads names from an @file, skipping comments and blank lines', () => {
    expect(names(`@${fixturePath('inventory/failed-hosts.txt')}`)).toEqual(['nuc-2', 'pi-1']);
  });

  it('excludes the names of an @file written as !@file', () => {
    expect(names(`lab,!@${fixturePath('inventory/failed-hosts.txt')}`)).toEqual(['nuc-1']);
  });

  it('refuses a pattern that matches nothing, and suggests the name that was meant', () => {
    const error = configErrorFrom(() => names('nuc-1,nuc-5'));
    expect(error.where).toEqual({ file: '--limit' });
    expect(error.message).toBe(`--limit pattern 'nuc-5' matches no host or group in ${inventory.file}`);
    expect(error.hint).toBe("did you mean 'nuc-1'?");
  });

  it('refuses an exclusion that matches nothing, as it is surely a typo', () => {
    expect(configErrorFrom(() => names('lab,!esat')).message).toContain("'esat' matches no host or group");
  });

  it('refuses a group with no hosts, saying so', () => {
    expect(configErrorFrom(() => names('spare')).message).toBe(
      "--limit pattern 'spare' names a group with no hosts",
    );
  });

  it('refuses a limit whose exclusions remove every host', () => {
    expect(configErrorFrom(() => names('east,!pi-1')).message).toBe(
      "--limit 'east,!pi-1' leaves no host to work on",
    );
  });

  it('points at the line and column of an unknown name in an @file', () => {
    const file = fixturePath('inventory/failed-hosts-typo.txt');
    const error = configErrorFrom(() => names(`@${file}`));
    expect(error.where).toEqual({ file, line: 2, col: 3 });
    expect(error.message).toContain("'nuc-22' matches no host");
  });

  it('refuses an @file that does not exist', () => {
    expect(configErrorFrom(() => names('@/no/such/failed-hosts.txt')).message).toBe(
      '--limit file not found: /no/such/failed-hosts.txt',
    );
  });
});
