import { describe, expect, it } from 'vitest';
import { exitCodeFor, formatError } from '../../orchestrator/cli/exit.ts';
import {
  AuthError,
  ConfigError,
  ExitCode,
  HostKeyError,
  RefusalError,
  RemoteCommandError,
  UnreachableError,
} from '../../orchestrator/errors.ts';

describe('the exit point', () => {
  const hostProblems = [
    new UnreachableError('cannot connect to root@192.0.2.1:22: connect ETIMEDOUT'),
    new AuthError('root@192.0.2.1:22 refused every credential'),
    new HostKeyError('host key of 192.0.2.1:22 changed', 'changed', 'SHA256:x'),
    new RemoteCommandError('probe exited with code 1:\nsh: oops\n', 1, 'sh: oops'),
    new RefusalError(['no GRUB', 'Secure Boot is on']),
  ];

  it.each(hostProblems.map((e) => [e.name, e] as const))(
    'maps a %s to exit 1 with one error line and a next step, no stack',
    (_name, err) => {
      expect(exitCodeFor(err)).toBe(ExitCode.hostsFailed);
      const lines = formatError(err).split('\n');
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(/^error: \S/);
      expect(lines[1]).toMatch(/^ {2}next: \S/);
    },
  );

  it('keeps bad input at 2 and anything unexpected at 70, as a bug', () => {
    expect(exitCodeFor(new ConfigError('bad', { file: 'x.yml', line: 1 }))).toBe(ExitCode.usage);
    const bug = new TypeError('undefined is not a function');
    expect(exitCodeFor(bug)).toBe(ExitCode.internal);
    expect(formatError(bug)).toMatch(/^internal error: .*\n {2}this is a bug/);
  });
});
