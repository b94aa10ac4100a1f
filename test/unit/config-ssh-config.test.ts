import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../orchestrator/config/inventory.ts';
import {
  loadSshConfig,
  mergeConnectionSettings,
  NO_SSH_CONFIG,
} from '../../orchestrator/config/ssh-config.ts';
import { configErrorFrom, fixturePath } from '../fixtures/config/config-error.ts';

const sshConfigFile = fixturePath('config/ssh/config');
const lookup = (host: string) => loadSshConfig(sshConfigFile, { required: true }).lookup(host);
const home = (path: string) => join(homedir(), path);

describe('ssh config lookup', () => {
  it('takes the first value for each setting across matching Host blocks', () => {
    expect(lookup('nuc-7')).toEqual({
      hostName: '192.0.2.77',
      user: 'fleet',
      port: 2207,
      identityFiles: [home('.ssh/fleet_ed25519'), home('.ssh/id_default')],
    });
  });

  it('gives nothing but the catch-all settings for a host no block names', () => {
    expect(lookup('elsewhere')).toEqual({ identityFiles: [home('.ssh/id_default')] });
  });

  it('reads files pulled in by Include with a wildcard, in name order', () => {
    expect(lookup('pi-1')).toMatchObject({ user: 'pi', port: 2200, proxyJump: 'ops@gw.example:2022' });
    // 20-pi-special.conf comes after 10-pi.conf: its User loses, its HostName is new.
    expect(lookup('pi-special')).toMatchObject({ user: 'pi', hostName: '192.0.2.50' });
  });

  it('applies an Include inside a Host block only to that block, before the lines after it', () => {
    expect(lookup('inner-a')).toMatchObject({ user: 'from-include', port: 2022 });
    expect(lookup('inner-b')).toMatchObject({ hostName: '192.0.2.62' });
    expect(lookup('outer-a').user).toBeUndefined();
  });

  it('honours negated patterns and expands %h in HostName', () => {
    expect(lookup('web.lab').hostName).toBe('web.lab.example');
    expect(lookup('db.lab').hostName).toBeUndefined();
  });

  it('evaluates Match host blocks', () => {
    expect(lookup('192.0.2.99').user).toBe('matched-by-address');
  });

  it('treats a missing default file as an empty config', () => {
    const config = loadSshConfig(fixturePath('config/ssh/no-such-file'));
    expect(config.lookup('nuc-1')).toEqual({ identityFiles: [] });
  });

  it('refuses a Port that is not a number, naming the file', () => {
    const error = configErrorFrom(() => loadSshConfig(fixturePath('config/ssh/bad-port')).lookup('nuc-1'));
    expect(error.where).toEqual({ file: fixturePath('config/ssh/bad-port') });
    expect(error.message).toBe("Port 'twenty-two' that applies to host 'nuc-1' is not a port number");
  });

  it('stops an Include loop with an error instead of recursing forever', () => {
    const error = configErrorFrom(() => loadSshConfig(fixturePath('config/ssh/loop')));
    expect(error.message).toBe('Include is nested more than 16 levels deep');
  });
});

describe('connection settings precedence', () => {
  const defaults = { address: 'nuc-1', user: 'root', port: 22 };

  it('lets the inventory win over the ssh config, and the ssh config over the defaults', () => {
    const ssh = {
      hostName: '192.0.2.9',
      user: 'fleet',
      port: 2200,
      identityFiles: ['/k/a', '/k/b'],
      proxyJump: 'gw',
    };
    expect(mergeConnectionSettings({ user: 'admin' }, ssh, defaults)).toEqual({
      address: '192.0.2.9',
      user: 'admin',
      port: 2200,
      identityFile: '/k/a',
      jump: 'gw',
    });
    expect(mergeConnectionSettings({}, NO_SSH_CONFIG.lookup('x'), defaults)).toEqual({
      ...defaults,
      identityFile: undefined,
      jump: undefined,
    });
  });

  describe('for an inventory read with an ssh config', () => {
    // The ssh config names ~/.ssh/fleet_ed25519 and ~/.ssh/id_default: give it a home
    // where only the first exists, as ssh skips key files that are missing.
    let fakeHome: string;
    const realHome = process.env.HOME;
    beforeAll(() => {
      fakeHome = mkdtempSync(join(tmpdir(), 'bm-home-'));
      mkdirSync(join(fakeHome, '.ssh'));
      writeFileSync(join(fakeHome, '.ssh/fleet_ed25519'), 'placeholder');
      process.env.HOME = fakeHome;
    });
    afterAll(() => {
      process.env.HOME = realHome;
      rmSync(fakeHome, { recursive: true, force: true });
    });

    const hosts = () =>
      Object.fromEntries(
        loadInventory(fixturePath('inventory/with-ssh-config.yml'), { sshConfigFile }).hosts.map((host) => [
          host.name,
          host,
        ]),
      );

    it('fills address, port, user and key of a bare host from the ssh config', () => {
      expect(hosts()['nuc-7']).toMatchObject({
        address: '192.0.2.77',
        port: 2207,
        user: 'fleet',
        identityFile: home('.ssh/fleet_ed25519'),
        jump: [],
      });
    });

    it('offers only the ssh config key files that exist, as ssh does', () => {
      expect(hosts().other!.identityFile).toBeUndefined();
    });

    it('keeps the user and port the inventory gives', () => {
      expect(hosts()['nuc-8']).toMatchObject({ address: 'nuc-8', user: 'admin', port: 22 });
    });

    it('follows a ProxyJump from the ssh config', () => {
      expect(hosts()['pi-1']).toMatchObject({ address: '192.0.2.30', user: 'pi', port: 2200 });
      expect(hosts()['pi-1']!.jump).toEqual([
        {
          name: 'gw.example',
          address: 'gw.example',
          port: 2022,
          user: 'ops',
          identityFile: undefined,
        },
      ]);
    });

    it('also matches ssh config patterns against an explicit address, as Ansible users expect', () => {
      expect(hosts().edge).toMatchObject({ address: '10.1.0.5', user: 'pi' });
      expect(hosts().edge!.jump).toEqual([
        {
          name: 'bastion',
          address: 'bastion.example',
          port: 2222,
          user: 'ops',
          identityFile: undefined,
        },
      ]);
    });

    it('completes a jump named in the inventory from the ssh config, like ssh -J does', () => {
      expect(hosts().other!.jump.map((hop) => `${hop.user}@${hop.address}:${hop.port}`)).toEqual([
        'ops@bastion.example:2222',
      ]);
    });

    it('prefers the identity file and the jump the inventory gives', () => {
      expect(hosts().plain).toMatchObject({ identityFile: fixturePath('inventory/keys/fleet'), jump: [] });
    });
  });
});
