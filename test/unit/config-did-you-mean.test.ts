import { describe, expect, it } from 'vitest';
import { closestName, suggestionHint } from '../../orchestrator/config/did-you-mean.ts';

describe('did you mean', () => {
  const keys = ['address', 'port', 'user', 'identityFile', 'configJson', 'workDir'];

  it('suggests the known name one typo away', () => {
    expect(closestName('adress', keys)).toBe('address');
    expect(closestName('prot', keys)).toBe('port');
  });

  it('ignores case, dashes and underscores, the usual slips between YAML styles', () => {
    expect(closestName('config_json', keys)).toBe('configJson');
    expect(closestName('WORK-DIR', keys)).toBe('workDir');
  });

  it('suggests nothing for a word that is not a typo of any name', () => {
    expect(closestName('password', keys)).toBeUndefined();
  });

  it('lists the valid names when nothing is close', () => {
    expect(suggestionHint('password', ['port', 'user'])).toBe('valid keys: port, user');
  });
});
