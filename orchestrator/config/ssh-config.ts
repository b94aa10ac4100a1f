// Reads the operator's OpenSSH client config (~/.ssh/config) so a host reachable with
// plain `ssh nuc-1` is reachable the same way here: HostName, User, Port, IdentityFile and
// ProxyJump, honouring Host/Match patterns and Include. Parsing and pattern matching are
// the ssh-config library's; Include expansion and token expansion are ours.
import { readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import SSHConfig, { type Line, LineType, type Section } from 'ssh-config';
import { ConfigError } from '../errors.ts';
import { readSourceText } from './source-text.ts';

/** What the ssh config says about one host; undefined where it says nothing. */
export interface SshHostSettings {
  hostName?: string;
  user?: string;
  port?: number;
  /** absolute paths, `~` and `%d`/`%h`/`%r` expanded, in the order ssh would try them */
  identityFiles: string[];
  /** as written: `host`, `user@host:port`, a comma-separated chain, or `none` */
  proxyJump?: string;
}

export interface SshConfigLookup {
  /** the file read, or undefined for the empty lookup */
  file: string | undefined;
  lookup(host: string): SshHostSettings;
}

/** A lookup that knows nothing: used when no ssh config is wanted (and in tests). */
export const NO_SSH_CONFIG: SshConfigLookup = { file: undefined, lookup: () => ({ identityFiles: [] }) };

// OpenSSH stops at the same depth; deeper nesting is almost surely an Include loop.
const MAX_INCLUDE_DEPTH = 16;

/**
 * Loads `file` and everything it includes. A missing file gives the empty lookup unless
 * `required` (an explicitly named file must exist; the default ~/.ssh/config need not).
 */
export function loadSshConfig(file: string, options: { required?: boolean } = {}): SshConfigLookup {
  const path = resolve(expandHome(file));
  if (!options.required && !isFile(path)) return { ...NO_SSH_CONFIG, file: path };
  const config = new SSHConfig();
  config.push(...expandIncludes(path, dirname(path), 0));
  return { file: path, lookup: (host) => lookupHost(config, host, path) };
}

/**
 * Connection settings by precedence: what the inventory says wins over the ssh config,
 * which wins over the built-in defaults.
 */
export function mergeConnectionSettings(
  inventory: { address?: string; user?: string; port?: number; identityFile?: string; jump?: string },
  ssh: SshHostSettings,
  defaults: { address: string; user: string; port: number },
): {
  address: string;
  user: string;
  port: number;
  identityFile: string | undefined;
  jump: string | undefined;
} {
  return {
    address: inventory.address ?? ssh.hostName ?? defaults.address,
    user: inventory.user ?? ssh.user ?? defaults.user,
    port: inventory.port ?? ssh.port ?? defaults.port,
    identityFile: inventory.identityFile ?? ssh.identityFiles[0],
    jump: inventory.jump ?? ssh.proxyJump,
  };
}

function lookupHost(config: SSHConfig, host: string, file: string): SshHostSettings {
  // `Match exec` would run commands from the file: never do that while reading config.
  const found = config.compute(host, { ignoreCase: true, matchExec: false });
  const first = (key: string) => {
    const value = found[key];
    return Array.isArray(value) ? value[0] : value;
  };
  const user = first('user');
  const settings: SshHostSettings = { identityFiles: [] };
  const hostName = first('hostname');
  if (hostName !== undefined) settings.hostName = expandTokens(hostName, host, user);
  if (user !== undefined) settings.user = user;
  const port = first('port');
  if (port !== undefined) {
    if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
      throw new ConfigError(
        `Port '${port}' that applies to host '${host}' is not a port number`,
        { file },
        'fix the Port line in your ssh config (a number from 1 to 65535)',
      );
    }
    settings.port = Number(port);
  }
  const identityFiles = found.identityfile;
  const files = Array.isArray(identityFiles) ? identityFiles : identityFiles ? [identityFiles] : [];
  settings.identityFiles = files
    .filter((path) => path.toLowerCase() !== 'none')
    .map((path) => resolve(dirname(file), expandHome(expandTokens(path, host, user))));
  const proxyJump = first('proxyjump');
  if (proxyJump !== undefined) settings.proxyJump = proxyJump;
  return settings;
}

/** The few ssh_config tokens that make sense here: %h host, %r user, %d home, %% percent. */
function expandTokens(value: string, host: string, user: string | undefined): string {
  return value.replace(/%([hrd%])/g, (token, letter: string) => {
    if (letter === 'h') return host;
    if (letter === 'd') return homedir();
    if (letter === 'r') return user ?? token;
    return '%';
  });
}

function expandHome(path: string): string {
  if (path === '~') return homedir();
  return path.startsWith('~/') ? join(homedir(), path.slice(2)) : path;
}

/**
 * The file's lines with every Include replaced by the included files' lines. An Include
 * inside a Host/Match block applies under that block's condition, as in OpenSSH: the
 * block is split around it so first-match-wins order is kept.
 */
function expandIncludes(file: string, baseDir: string, depth: number): Line[] {
  if (depth > MAX_INCLUDE_DEPTH) {
    throw new ConfigError(
      `Include is nested more than ${MAX_INCLUDE_DEPTH} levels deep`,
      { file },
      'check your ssh config for a file that includes itself',
    );
  }
  const parsed = SSHConfig.parse(readSourceText(file, 'ssh config').text);
  const out: Line[] = [];
  for (const line of parsed) {
    if (isInclude(line)) {
      out.push(...includedLines(line, baseDir, depth));
    } else if (isSection(line)) {
      out.push(...splitSection(line, baseDir, depth));
    } else {
      out.push(line);
    }
  }
  return out;
}

function splitSection(section: Section, baseDir: string, depth: number): Line[] {
  const out: Line[] = [];
  let current = withConfig(section, []);
  for (const line of section.config) {
    if (!isInclude(line)) {
      current.config.push(line);
      continue;
    }
    out.push(current);
    for (const included of includedLines(line, baseDir, depth)) {
      // Top-level lines of the included file take the enclosing block's condition.
      out.push(isSection(included) ? included : withConfig(section, [included]));
    }
    current = withConfig(section, []);
  }
  out.push(current);
  return out;
}

function includedLines(line: Line, baseDir: string, depth: number): Line[] {
  const value = (line as Section).value;
  const patterns = typeof value === 'string' ? value.split(/\s+/) : value.map((part) => part.val);
  const out: Line[] = [];
  for (const pattern of patterns.filter(Boolean)) {
    const absolute = isAbsolute(expandHome(pattern)) ? expandHome(pattern) : join(baseDir, pattern);
    for (const file of expandGlob(absolute)) out.push(...expandIncludes(file, baseDir, depth + 1));
  }
  return out;
}

function withConfig(section: Section, lines: Line[]): Section {
  const config = new SSHConfig();
  config.push(...lines);
  return { ...section, config };
}

function isInclude(line: Line): boolean {
  return line.type === LineType.DIRECTIVE && line.param.toLowerCase() === 'include';
}

function isSection(line: Line): line is Section {
  return line.type === LineType.DIRECTIVE && 'config' in line;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Files matching a path with `*`/`?` wildcards, sorted like glob(3); none is fine. */
function expandGlob(pattern: string): string[] {
  const parts = pattern.split('/').filter(Boolean);
  let paths = ['/'];
  for (const part of parts) {
    if (!/[*?[]/.test(part)) {
      paths = paths.map((dir) => join(dir, part));
      continue;
    }
    const matcher = new RegExp(
      `^${part
        .replace(/[.+^${}()|\\\]]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.')}$`,
    );
    paths = paths.flatMap((dir) => {
      try {
        return readdirSync(dir)
          .filter((name) => !name.startsWith('.') && matcher.test(name))
          .sort()
          .map((name) => join(dir, name));
      } catch {
        return [];
      }
    });
  }
  return paths.filter(isFile);
}
