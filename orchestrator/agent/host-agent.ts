// What agent mode hands one host's pipeline (phases/run-host.ts): the device type its image
// was prepared for, the backend device for its report, and the online check after the reboot.
import type { HostDownloadResult, HostImageDownload } from '../phases/host-download.ts';
import type { BalenaDeviceRecord } from '../report/host-report.ts';
import type { OnlineVerdict } from './verify-online.ts';

export interface HostAgent {
  /** the image and config.json were made for this device type; another plan is refused */
  deviceType: string;
  device: BalenaDeviceRecord;
  /** agent.hostDownload: where the host may fetch the image itself; absent when the option is off */
  imageDownload?: HostImageDownload;
  /**
   * After balenaOS answered on the host: does the backend see the device online in time?
   * Never throws: the host is past its reboot, every answer must be an outcome.
   */
  confirmOnline(signal: AbortSignal, log: (message: string) => void): Promise<OnlineVerdict>;
}

/** The refusal when the host is not the device type its image was prepared for. */
export function deviceTypeMismatch(planned: string, prepared: string): string | null {
  if (planned === prepared) return null;
  return (
    `this host is a ${planned}, but agent mode prepared a ${prepared} image and config.json for it: ` +
    `set the host var balenaDeviceType: ${planned} (or agent.deviceType), or use a fleet of ${planned} devices`
  );
}

/** How the image reached the host, for its report. */
export function imageDownloadRecord(r: HostDownloadResult): NonNullable<BalenaDeviceRecord['imageDownload']> {
  return r.ok
    ? { by: 'host', tool: r.tool, attempts: r.attempts }
    : { by: 'push', tool: r.tool, attempts: r.attempts, fallbackReason: r.reason };
}
