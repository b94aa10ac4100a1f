// The balena backend as agent mode uses it, through balena's own SDK (balena-sdk): log in with
// an API key, look up the fleet, device types and balenaOS versions, stream an image, generate
// config.json, register devices and ask whether they are online. The SDK is the only thing
// here that speaks HTTP. Its errors carry request options (with the Authorization header), so
// none leaves this file: each becomes a BackendError with a redacted sentence and a next step.
import type { Readable } from 'node:stream';
import type { BalenaSDK } from 'balena-sdk';
import { ConfigError } from '../errors.ts';
import { type ApiKey, redact } from './api-key.ts';

/**
 * The backend said no, or could not be reached, while the run was being prepared. Like a
 * ConfigError it stops the run before any host is contacted (exit code 2).
 */
export class BackendError extends ConfigError {
  override name = 'BackendError';
  /** the HTTP status the backend answered with, when there was one */
  statusCode: number | undefined;
}

export interface FleetInfo {
  id: number;
  slug: string;
  /** the fleet's default device type */
  deviceType: string;
  /** cpu architecture of the fleet's device type (amd64, aarch64, armv7hf, rpi, i386) */
  cpuArch: string;
}

export interface DeviceTypeInfo {
  slug: string;
  cpuArch: string;
}

export interface DeviceInfo {
  id: number;
  uuid: string;
  name: string | null;
  fleetId: number | null;
  deviceType: string | null;
}

export interface Registration {
  id: number;
  uuid: string;
  /** the device's own API key: goes into its config.json, nowhere else */
  deviceApiKey: string;
}

export interface ImageStream {
  stream: Readable;
  /** 200 for the whole file, 206 when a Range request was honoured */
  status: number;
  /** Content-Length of this response, when sent */
  contentLength: number | undefined;
  /** total size of the file (from Content-Range on a 206, Content-Length on a 200) */
  totalBytes: number | undefined;
}

/** config.json options the backend takes (balena-sdk's ImgConfigOptions, minus the version). */
export interface ConfigOptions {
  version: string;
  deviceType: string;
  network: 'ethernet' | 'wifi';
  wifiSsid?: string;
  wifiKey?: string;
  appUpdatePollInterval?: number;
  developmentMode?: boolean;
}

/** The query os.download sends; a resumed download repeats it with a Range header. */
export function imageQuery(deviceType: string, version: string): Record<string, string> {
  return { fileType: '.gz', imageType: 'raw', deviceType, version };
}

export class BalenaBackend {
  private constructor(
    private readonly sdk: BalenaSDK,
    readonly apiUrl: string,
    private readonly key: ApiKey,
  ) {}

  /** Logs in with the API key and checks that the backend accepts it. */
  static async connect(apiUrl: string, key: ApiKey): Promise<BalenaBackend> {
    // Loaded on demand: standalone runs never pay for the SDK.
    const { getSdk } = await import('balena-sdk');
    // dataDirectory false: an in-memory session, the key is never written to disk.
    const sdk = getSdk({ apiUrl, dataDirectory: false, isBrowser: false, retryRateLimitedRequests: true });
    const backend = new BalenaBackend(sdk, apiUrl, key);
    await sdk.auth.loginWithToken(key.value);
    const ok = await backend.call('log in', () => sdk.auth.isLoggedIn());
    if (!ok) {
      throw new BackendError(
        `the balena API refused the API key from ${key.origin}`,
        { file: apiUrl },
        'create a new API key in the dashboard (Preferences → Access tokens), put it in the file or variable, and run again',
      );
    }
    return backend;
  }

  async fleet(slugOrId: string | number): Promise<FleetInfo> {
    const app = await this.call(
      `look up fleet ${slugOrId}`,
      () =>
        this.sdk.models.application.get(slugOrId, {
          $select: ['id', 'slug'],
          $expand: {
            is_for__device_type: {
              $select: 'slug',
              $expand: { is_of__cpu_architecture: { $select: 'slug' } },
            },
          },
        }),
      {
        BalenaApplicationNotFound: () =>
          new BackendError(
            `fleet '${slugOrId}' not found, or this API key cannot see it`,
            { file: this.apiUrl },
            "check agent.fleet (the slug as shown in the dashboard, e.g. 'myorg/myfleet') and that the key's user is a member of the fleet",
          ),
      },
    );
    const dt = (app.is_for__device_type as unknown as DeviceTypeRow[])[0];
    return {
      id: app.id,
      slug: app.slug,
      deviceType: dt?.slug ?? 'unknown',
      cpuArch: dt?.is_of__cpu_architecture[0]?.slug ?? 'unknown',
    };
  }

  async deviceType(slug: string): Promise<DeviceTypeInfo> {
    const dt = await this.call(
      `look up device type ${slug}`,
      () =>
        this.sdk.models.deviceType.get(slug, {
          $select: 'slug',
          $expand: { is_of__cpu_architecture: { $select: 'slug' } },
        }),
      {
        BalenaInvalidDeviceType: () =>
          new BackendError(
            `the backend knows no device type '${slug}'`,
            { file: this.apiUrl },
            'use a device type slug from the dashboard or `balena device-type list`, e.g. genericx86-64-ext',
          ),
      },
    );
    const arch = (dt.is_of__cpu_architecture as unknown as Array<{ slug: string }>)[0]?.slug ?? 'unknown';
    return { slug: dt.slug, cpuArch: arch };
  }

  /** Whether devices of `deviceType` can join `fleet` (the SDK's own architecture rule). */
  supports(fleet: FleetInfo, deviceType: DeviceTypeInfo): boolean {
    return this.sdk.models.os.isArchitectureCompatibleWith(deviceType.cpuArch, fleet.cpuArch);
  }

  /** `latest`, an exact version or a range → the exact balenaOS version, or null if none fits. */
  async resolveOsVersion(
    deviceType: string,
    versionOrRange: string,
  ): Promise<{ version: string | null; available: string[] }> {
    const versions = await this.call(`list balenaOS versions for ${deviceType}`, () =>
      this.sdk.models.os.getAvailableOsVersions(deviceType),
    );
    const available = versions.map((v) => v.raw_version);
    const version =
      versionOrRange === 'latest'
        ? (versions.find((v) => v.osType === 'default')?.raw_version ?? null)
        : await this.call(`match balenaOS version ${versionOrRange}`, () =>
            this.sdk.models.os.getMaxSatisfyingVersion(deviceType, versionOrRange),
          );
    return { version, available };
  }

  /**
   * Streams the gzipped raw image. From byte 0 this is os.download; to continue a partial file
   * it is the same request through the SDK's request layer with a Range header (os.download
   * takes no headers).
   */
  async openImage(deviceType: string, version: string, fromByte: number): Promise<ImageStream> {
    const query = imageQuery(deviceType, version);
    const download = (await this.call(`download balenaOS ${version} for ${deviceType}`, () =>
      fromByte === 0
        ? this.sdk.models.os.download({
            deviceType,
            version,
            fileType: '.gz',
            imageType: 'raw',
          })
        : this.sdk.request.stream({
            method: 'GET',
            url: '/download',
            baseUrl: this.apiUrl,
            qs: query,
            headers: { Range: `bytes=${fromByte}-` },
          } as Parameters<BalenaSDK['request']['stream']>[0]),
    )) as unknown as Readable & { response: FetchResponse };
    const headers = download.response.headers;
    const status = download.response.status;
    const contentLength = numberOrUndefined(headers.get('content-length'));
    const rangeTotal = /\/(\d+)$/.exec(headers.get('content-range') ?? '')?.[1];
    const totalBytes = status === 206 ? numberOrUndefined(rangeTotal) : contentLength;
    if (headers.get('content-encoding') === 'gzip' && status === 206) {
      // The SDK would gunzip a range of a compressed stream: that cannot be appended.
      download.destroy();
      throw new BackendError(
        'the backend sent a compressed partial response that cannot be resumed',
        { file: this.apiUrl },
        'delete the .part file in the image cache and run again',
      );
    }
    return { stream: download, status, contentLength, totalBytes };
  }

  /** The fleet's config.json for one device type and version, as the backend generates it. */
  async fleetConfig(fleetId: number, options: ConfigOptions): Promise<Record<string, unknown>> {
    const config = await this.call('generate config.json', () =>
      this.sdk.models.os.getConfig(fleetId, { ...options }),
    );
    return config as unknown as Record<string, unknown>;
  }

  /** Pre-registers a new device in the fleet; the backend returns its API key. */
  async register(fleetId: number, deviceType: string): Promise<Registration> {
    const uuid = this.sdk.models.device.generateUniqueKey();
    const reg = await this.call(`register a ${deviceType} device`, () =>
      this.sdk.models.device.register(fleetId, uuid, deviceType),
    );
    return { id: reg.id, uuid: reg.uuid, deviceApiKey: reg.api_key };
  }

  /** Names the device in the dashboard after the inventory host. */
  async rename(uuid: string, name: string): Promise<void> {
    await this.call(`name device ${uuid}`, () => this.sdk.models.device.rename(uuid, name));
  }

  async device(uuid: string): Promise<DeviceInfo> {
    const d = await this.call(
      `look up device ${uuid}`,
      () =>
        this.sdk.models.device.get(uuid, {
          $select: ['id', 'uuid', 'device_name'],
          $expand: {
            belongs_to__application: { $select: 'id' },
            is_of__device_type: { $select: 'slug' },
          },
        }),
      {
        BalenaDeviceNotFound: () =>
          new BackendError(
            `device ${uuid} not found, or this API key cannot see it`,
            { file: this.apiUrl },
            'check the balenaUuid host var (the full 32-character UUID from the dashboard)',
          ),
        BalenaAmbiguousDevice: () =>
          new BackendError(
            `more than one device starts with ${uuid}`,
            { file: this.apiUrl },
            'give the full 32-character UUID in the balenaUuid host var',
          ),
      },
    );
    const row = d as unknown as {
      belongs_to__application?: Array<{ id: number }>;
      is_of__device_type?: Array<{ slug: string }>;
    };
    return {
      id: d.id,
      uuid: d.uuid,
      name: d.device_name ?? null,
      fleetId: row.belongs_to__application?.[0]?.id ?? null,
      deviceType: row.is_of__device_type?.[0]?.slug ?? null,
    };
  }

  /** A fresh API key for an existing device, for its new config.json. */
  async deviceKey(uuid: string): Promise<string> {
    return await this.call(`create a device key for ${uuid}`, () =>
      this.sdk.models.device.generateDeviceKey(
        uuid,
        'balena-migrate',
        'config.json written by balena-migrate',
      ),
    );
  }

  /** Online as the dashboard shows it: connected to the VPN, or the API heartbeat is online. */
  async isOnline(uuid: string): Promise<boolean> {
    const d = await this.call(`ask whether ${uuid} is online`, () =>
      this.sdk.models.device.get(uuid, { $select: ['is_connected_to_vpn', 'api_heartbeat_state'] }),
    );
    return d.is_connected_to_vpn === true || d.api_heartbeat_state === 'online';
  }

  /**
   * The image's URL for a host to fetch by itself, without credentials: balenaCloud serves
   * public device types' images to anyone (balena-cli #1743); a private one answers 401 and
   * the laptop pushes its copy instead.
   */
  imageUrl(deviceType: string, version: string): string {
    const query = new URLSearchParams(imageQuery(deviceType, version)).toString();
    return `${this.apiUrl.replace(/\/+$/, '')}/download?${query}`;
  }

  dashboardUrl(uuid: string): string {
    return this.sdk.models.device.getDashboardUrl(uuid);
  }

  /** Runs one SDK call; every failure becomes a BackendError without the key in it. */
  private async call<T>(
    what: string,
    fn: () => Promise<T>,
    byCode: Record<string, () => BackendError> = {},
  ): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.translate(what, err, byCode);
    }
  }

  private translate(what: string, err: unknown, byCode: Record<string, () => BackendError>): BackendError {
    if (err instanceof BackendError) return err;
    const e = (err ?? {}) as {
      code?: string;
      statusCode?: number;
      message?: string;
      cause?: Error & { code?: string };
    };
    const known = e.code ? byCode[e.code] : undefined;
    if (known) return known();
    const secrets = [this.key.value];
    if (e.code === 'BalenaNotLoggedIn' || e.code === 'BalenaExpiredToken' || e.statusCode === 401) {
      return new BackendError(
        `the balena API refused the API key from ${this.key.origin} (${what})`,
        { file: this.apiUrl },
        'create a new API key in the dashboard (Preferences → Access tokens) and run again',
      );
    }
    if (e.statusCode === 403) {
      return new BackendError(
        `the API key from ${this.key.origin} may not ${what}`,
        { file: this.apiUrl },
        'use a key of a user who is a developer or administrator of the fleet',
      );
    }
    const network = e.code ?? e.cause?.code;
    if (
      network &&
      /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|EHOSTUNREACH|ENETUNREACH)$/.test(network)
    ) {
      return new BackendError(
        `cannot reach the balena API to ${what} (${network})`,
        { file: this.apiUrl },
        'check the network and agent.apiUrl, then run again',
      );
    }
    const cause = e.cause instanceof Error ? ` (${e.cause.message})` : '';
    const message = redact(`${String(e.message ?? err)}${cause}`, secrets)
      .replace(/\s+/g, ' ')
      .slice(0, 300);
    const out = new BackendError(
      `could not ${what}: ${message}`,
      { file: this.apiUrl },
      'check the network and agent.apiUrl, and run again; if it persists, check the balena status page',
    );
    out.statusCode = e.statusCode;
    return out;
  }
}

interface DeviceTypeRow {
  slug: string;
  is_of__cpu_architecture: Array<{ slug: string }>;
}

interface FetchResponse {
  status: number;
  headers: { get(name: string): string | null };
}

function numberOrUndefined(text: string | null | undefined): number | undefined {
  if (text == null || text === '') return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}
