// One flat record per host for success and failure alike (the execa way): the report an
// operator reads, the JSON a script parses, and what the fleet renderers summarise.
import type { Facts } from '../facts/facts.ts';
import type { WindowsFacts } from '../facts/windows.ts';

export const OUTCOMES = [
  'migrated',
  'reverted',
  'refused',
  'unreachable',
  'failed',
  'needs-attention',
  'ready',
  'not-started',
] as const;
export type Outcome = (typeof OUTCOMES)[number];

export const PHASES = [
  'connect',
  'probe',
  'plan',
  'payload',
  'upload',
  'apply',
  'reboot',
  'verify',
  'undo',
] as const;
export type PhaseName = (typeof PHASES)[number];

export interface PhaseRecord {
  name: PhaseName;
  startedAt: string;
  endedAt: string | null;
  durationMs: number | null;
  ok: boolean;
  /** bytes moved in this phase (upload) */
  bytes?: number;
  retries: number;
  error?: string;
}

export interface HostError {
  /** error class name: UnreachableError, AuthError, HostKeyError, RemoteCommandError, ... */
  class: string;
  message: string;
  /** what the operator should do next */
  nextStep: string;
}

export interface HostReport {
  host: string;
  address: string;
  port: number;
  /** 1-based wave number, null when waves are not used */
  wave: number | null;
  command: 'check' | 'run';
  outcome: Outcome;
  /** false only for migrated (run) and ready (check) */
  failed: boolean;
  deviceType: string | null;
  bootManager: string | null;
  startedAt: string | null;
  endedAt: string | null;
  durationMs: number | null;
  phases: PhaseRecord[];
  bytesSent: number;
  retries: number;
  refusalReasons: string[];
  error: HostError | null;
  facts: Facts | null;
  /** Windows hosts: what the Windows probe found (facts stays null) */
  windowsFacts?: WindowsFacts;
  /** the plan as printed by `check` (payload sources are paths, never bytes) */
  plan: unknown | null;
  stage2Log: string | null;
  /** agent mode only: the device this host becomes in the balena backend */
  balena?: BalenaDeviceRecord;
}

/** Agent mode: the host's device in the balena backend (orchestrator/agent). */
export interface BalenaDeviceRecord {
  /** fleet slug */
  fleet: string;
  deviceType: string;
  osVersion: string;
  /** null when not registered (check) */
  uuid: string | null;
  dashboardUrl: string | null;
  /** whether the backend saw the device online after the reboot; null when not asked */
  online: boolean | null;
  /** agent.hostDownload: how the image reached the host (absent when the option is off) */
  imageDownload?: {
    by: 'host' | 'push';
    tool: 'curl' | 'wget' | null;
    attempts: number;
    /** why the push had to do it */
    fallbackReason?: string;
  };
}

export interface FleetReport {
  runId: string;
  command: 'check' | 'run';
  mode: string;
  startedAt: string;
  endedAt: string;
  durationMs: number;
  hosts: HostReport[];
  counts: Partial<Record<Outcome, number>>;
  exitCode: number;
}
