import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../orchestrator/errors.ts';
import {
  defaultFailureBudget,
  describeBudget,
  failureLimit,
  isBudgetSpent,
  parseMaxFailures,
  parseWaves,
  planWaves,
  splitIntoWaves,
} from '../../orchestrator/fleet/waves.ts';

function configErrorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('--waves', () => {
  it('turns 1,10%,100% over 200 hosts into waves of 1, 19 and 180', () => {
    expect(planWaves(parseWaves('1,10%,100%'), 200)).toEqual([1, 19, 180]);
  });

  it('treats every entry as a cumulative target, counts and shares alike', () => {
    expect(planWaves(parseWaves('2,10,50%,100%'), 100)).toEqual([2, 8, 40, 50]);
  });

  it('rounds a share up so that a small share of a small fleet still holds one host', () => {
    expect(planWaves(parseWaves('10%,100%'), 5)).toEqual([1, 4]);
  });

  it('does not let float noise add a host (7% of 100 is 7)', () => {
    expect(planWaves(parseWaves('7%,100%'), 100)).toEqual([7, 93]);
  });

  it('drops waves that add nobody when targets collapse on a small fleet', () => {
    expect(planWaves(parseWaves('1,10%,100%'), 5)).toEqual([1, 4]);
    expect(planWaves(parseWaves('5,10%,100%'), 20)).toEqual([5, 15]);
  });

  it('clamps counts beyond the fleet to the fleet', () => {
    expect(planWaves(parseWaves('1,10,50'), 4)).toEqual([1, 3]);
  });

  it('makes one wave of every host when no waves are given', () => {
    expect(planWaves(null, 7)).toEqual([7]);
    expect(planWaves(null, 0)).toEqual([]);
  });

  it('accepts spaces and decimal shares', () => {
    expect(planWaves(parseWaves(' 1 , 0.5% ,100% '), 1000)).toEqual([1, 4, 995]);
  });

  it('refuses a list that leaves hosts out, and says to end it with 100%', () => {
    const error = configErrorOf(() => planWaves(parseWaves('1,10'), 200));
    expect(error.message).toContain('reaches only 10 of the 200 selected hosts');
    expect(error.hint).toContain('1,10,100%');
  });

  it.each([
    ['', 'is empty'],
    ['1,,100%', 'an entry is empty'],
    ['0,100%', 'a wave of 0 hosts'],
    ['10,5,100%', 'does not grow past 10'],
    ['50%,10%', 'does not grow past 50%'],
    ['1,150%', 'not a share between 0% and 100%'],
    ['0%,100%', 'not a share between 0% and 100%'],
    ['1,ten,100%', '"ten" is neither a host count nor a percentage'],
    ['1.5,100%', '"1.5" is neither'],
    ['-1,100%', '"-1" is neither'],
  ])('rejects %j with a message saying why and a hint with an example', (spec, why) => {
    const error = configErrorOf(() => parseWaves(spec));
    expect(error.message).toContain(why);
    expect(error.format()).toContain('fix: write cumulative targets, e.g. --waves 1,10%,100%');
  });

  it('splits hosts into waves in inventory order', () => {
    const hosts = ['a', 'b', 'c', 'd', 'e', 'f'];
    expect(splitIntoWaves(hosts, parseWaves('1,50%,100%'))).toEqual([['a'], ['b', 'c'], ['d', 'e', 'f']]);
  });
});

describe('--max-failures', () => {
  it('reads a count, a share and "none"', () => {
    expect(parseMaxFailures('3')).toEqual({ kind: 'count', max: 3 });
    expect(parseMaxFailures('0')).toEqual({ kind: 'count', max: 0 });
    expect(parseMaxFailures('5%')).toEqual({ kind: 'percent', percent: 5 });
    expect(parseMaxFailures('none')).toEqual({ kind: 'unlimited' });
  });

  it('tolerates N failures and is spent by failure N+1', () => {
    const limit = failureLimit(parseMaxFailures('2'), 100);
    expect(limit).toBe(2);
    expect(isBudgetSpent(limit, 2)).toBe(false);
    expect(isBudgetSpent(limit, 3)).toBe(true);
  });

  it('rounds a share of the hosts down: 5% of 30 hosts tolerates 1 failure', () => {
    expect(failureLimit(parseMaxFailures('5%'), 30)).toBe(1);
    expect(failureLimit(parseMaxFailures('10%'), 200)).toBe(20);
    expect(failureLimit(parseMaxFailures('10%'), 5)).toBe(0);
  });

  it('never spends an unlimited budget', () => {
    expect(failureLimit({ kind: 'unlimited' }, 10)).toBeNull();
    expect(isBudgetSpent(null, 1_000)).toBe(false);
  });

  it('stops a run at its first failure by default, and never stops a check', () => {
    expect(defaultFailureBudget('run')).toEqual({ kind: 'count', max: 0 });
    expect(isBudgetSpent(failureLimit(defaultFailureBudget('run'), 50), 1)).toBe(true);
    expect(defaultFailureBudget('check')).toEqual({ kind: 'unlimited' });
  });

  it.each(['', 'x', '-1', '1.5', '120%', '5 %'])('rejects %j with a hint', (spec) => {
    const error = configErrorOf(() => parseMaxFailures(spec));
    expect(error.hint).toContain('--max-failures 2');
  });

  it('describes a budget the way the operator wrote it', () => {
    expect(describeBudget(parseMaxFailures('3'))).toBe('3');
    expect(describeBudget(parseMaxFailures('2.5%'))).toBe('2.5%');
    expect(describeBudget(parseMaxFailures('none'))).toBe('none');
  });
});
