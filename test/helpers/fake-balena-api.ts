// A stand-in for the balena API on 127.0.0.1, for agent-mode tests without the internet. It
// implements the subset balena-sdk calls for agent mode, with the request shapes the SDK
// actually sends (recorded by pointing the SDK at this server with its apiUrl option):
//
//   GET  /actor/v1/whoami                                         who the API key belongs to
//   GET  /v7/application?$filter=slug eq 'S' or uuid eq 'S'...    fleet by slug
//   GET  /v7/application(ID)?...                                  fleet by id
//   GET  /v7/application?...$filter=is_host eq true and
//        is_for__device_type/any(dt:dt/slug in ('DT'))           balenaOS releases (host apps)
//   GET  /v7/device_type?...$filter=device_type_alias/any(dta:dta/is_referenced_by__alias eq 'DT')
//   POST /api-key/v2/                                             provisioning key (device.register)
//   POST /device/register        (Bearer provisioning key)        {id, uuid, api_key}, 201
//   GET  /v7/device(uuid='U')?...  and  /v7/device?$filter=...    a device, its fleet, type, status
//   PATCH /v7/device?$filter=id in (ID)                           rename
//   POST /api-key/device/ID/device-key                            a new device API key
//   POST /download-config                                         config.json for a fleet
//   GET  /download?fileType=.gz&imageType=raw&deviceType=&version=  the image; honours Range;
//                                                                 no key needed for a public device type
//   GET  /device/v3/UUID/state   (Bearer device key)              a device polling its target state, as
//                                                                 the supervisor does: it is online from then
//
// Every request is recorded (method, path, decoded query, which key authorised it, Range,
// body) so tests can assert what the SDK sent. The API key itself is never recorded.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';

export interface FakeFleet {
  id: number;
  slug: string;
  deviceType: string;
}

export interface FakeDeviceType {
  slug: string;
  cpuArch: string;
}

export interface FakeDevice {
  id: number;
  uuid: string;
  name: string;
  fleetId: number;
  deviceType: string;
  online: boolean;
  /** api keys issued for this device (registration and device-key) */
  keys: string[];
}

export interface RecordedRequest {
  method: string;
  path: string;
  /** the query string, percent-decoded */
  query: string;
  /** which credential authorised it */
  auth: 'none' | 'user-key' | 'provisioning-key' | 'device-key' | 'unknown-key';
  range: string | undefined;
  body: unknown;
}

export interface FakeBalenaOptions {
  /** user API keys the backend accepts */
  apiKeys: string[];
  fleets?: FakeFleet[];
  deviceTypes?: FakeDeviceType[];
  /** balenaOS versions per device type */
  osVersions?: Record<string, string[]>;
  /** the gzipped image served for every device type and version (default: makeDiskImage) */
  imageGz?: Buffer;
  /** device types whose image only a logged-in user may download (like private ones on balenaCloud) */
  privateDeviceTypes?: string[];
}

/** A small raw disk image with an MBR signature and incompressible content. */
export function makeDiskImage(sizeBytes = 1 << 20): Buffer {
  const raw = randomBytes(sizeBytes);
  raw.fill(0, 0, 512);
  raw[510] = 0x55;
  raw[511] = 0xaa;
  return raw;
}

export class FakeBalenaApi {
  readonly requests: RecordedRequest[] = [];
  readonly devices = new Map<string, FakeDevice>();
  readonly imageGz: Buffer;
  readonly fleets: FakeFleet[];
  readonly deviceTypes: FakeDeviceType[];
  readonly osVersions: Record<string, string[]>;
  private server: Server | undefined;
  private nextId = 1000;
  private provisioningKeys = new Map<string, number>();
  private cuts: number[] = [];
  /** answer isOnline with true after this many polls of a device (null: never by itself) */
  onlineAfterPolls: number | null = null;
  private polls = new Map<string, number>();
  url = '';
  /**
   * The API's address as devices see it, written into config.json as apiEndpoint (default:
   * `url`). A QEMU guest on user networking reaches the host's loopback at 10.0.2.2.
   */
  deviceApiUrl: string | undefined;
  /** target-state polls that devices made with their own key, in order */
  readonly heartbeats: { uuid: string; at: number }[] = [];
  /** the next image downloads made without a key get these bytes instead (a corrupt mirror) */
  private anonymousImageOverrides: Buffer[] = [];
  /** how many upcoming image downloads answer 503 */
  failDownloads = 0;
  /** image downloads trickle: `bytes` every `everyMs` (a slow link), when set */
  throttle: { bytes: number; everyMs: number } | null = null;

  constructor(private readonly options: FakeBalenaOptions) {
    this.fleets = options.fleets ?? [{ id: 11, slug: 'acme/lab', deviceType: 'genericx86-64-ext' }];
    this.deviceTypes = options.deviceTypes ?? [
      { slug: 'genericx86-64-ext', cpuArch: 'amd64' },
      { slug: 'raspberrypi4-64', cpuArch: 'aarch64' },
    ];
    this.osVersions = options.osVersions ?? {
      'genericx86-64-ext': ['6.0.13+rev1', '5.3.1+rev2', '6.0.10+rev3'],
      'raspberrypi4-64': ['6.0.13+rev1'],
    };
    this.imageGz = options.imageGz ?? gzipSync(makeDiskImage());
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        try {
          this.handle(req, res, Buffer.concat(chunks).toString('utf8'));
        } catch (err) {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(String(err));
        }
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  /** The next `count` image downloads send `afterBytes` bytes and then drop the connection. */
  cutDownloads(afterBytes: number, count = 1): void {
    for (let i = 0; i < count; i++) this.cuts.push(afterBytes);
  }

  /** The next `count` downloads made without a key get `bytes` instead of the image. */
  corruptAnonymousDownloads(bytes: Buffer, count = 1): void {
    for (let i = 0; i < count; i++) this.anonymousImageOverrides.push(bytes);
  }

  setOnline(uuid: string, online: boolean): void {
    const d = this.devices.get(uuid);
    if (!d) throw new Error(`no device ${uuid}`);
    d.online = online;
  }

  /** Adds a device as if registered earlier (e.g. from the dashboard). */
  addDevice(device: Omit<FakeDevice, 'id' | 'keys' | 'online'> & { online?: boolean }): FakeDevice {
    const d: FakeDevice = { id: this.nextId++, keys: [], online: false, ...device };
    this.devices.set(d.uuid, d);
    return d;
  }

  /** Requests whose path starts with `prefix`. */
  requestsTo(method: string, prefix: string): RecordedRequest[] {
    return this.requests.filter((r) => r.method === method && r.path.startsWith(prefix));
  }

  private handle(req: IncomingMessage, res: ServerResponse, bodyText: string): Answered {
    const [rawPath, rawQuery = ''] = (req.url ?? '/').split('?', 2) as [string, string?];
    const path = decodeURIComponent(rawPath);
    const params = parseQuery(rawQuery);
    const query = decodeURIComponent(rawQuery);
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const auth: RecordedRequest['auth'] =
      bearer === undefined
        ? 'none'
        : this.options.apiKeys.includes(bearer)
          ? 'user-key'
          : this.provisioningKeys.has(bearer)
            ? 'provisioning-key'
            : [...this.devices.values()].some((d) => d.keys.includes(bearer))
              ? 'device-key'
              : 'unknown-key';
    let body: unknown = bodyText;
    try {
      body = bodyText ? JSON.parse(bodyText) : undefined;
    } catch {}
    this.requests.push({ method: req.method ?? 'GET', path, query, auth, range: req.headers.range, body });

    const json: Json = (status, value) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(value));
      return true;
    };
    const text: Text = (status, value) => {
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(value);
      return true;
    };

    if (req.method === 'POST' && path === '/device/register') {
      if (auth !== 'provisioning-key') return text(401, 'Unauthorized');
      return this.register(bearer!, body as Record<string, unknown>, json, text);
    }
    const targetState = /^\/device\/v3\/([0-9a-f]+)\/state$/.exec(path);
    if (req.method === 'GET' && targetState) return this.targetState(targetState[1]!, bearer, json, text);
    if (req.method === 'GET' && path === '/download' && auth === 'none') {
      // balenaCloud serves the images of public device types to anyone (balena-cli #1743).
      if ((this.options.privateDeviceTypes ?? []).includes(params.deviceType ?? ''))
        return text(401, 'Unauthorized');
      return this.download(req, res, params, text, this.anonymousImageOverrides.shift());
    }
    if (auth !== 'user-key') return text(401, 'Unauthorized');

    if (req.method === 'GET' && path === '/actor/v1/whoami') {
      return json(200, {
        id: 7,
        actorType: 'user',
        actorTypeId: 3,
        username: 'operator',
        email: 'op@example.com',
      });
    }
    if (req.method === 'GET' && path.startsWith('/v7/application'))
      return this.applications(path, params, json);
    if (req.method === 'GET' && path.startsWith('/v7/device_type'))
      return this.deviceTypeRows(path, params, json);
    if (req.method === 'GET' && path.startsWith('/v7/device')) return this.deviceRows(path, params, json);
    if (req.method === 'PATCH' && path === '/v7/device') {
      const ids =
        /id in \(([\d,]+)\)/
          .exec(params.$filter ?? '')?.[1]
          ?.split(',')
          .map(Number) ?? [];
      const name = (body as { device_name?: string }).device_name;
      for (const d of this.devices.values()) if (ids.includes(d.id) && name) d.name = name;
      return text(200, 'OK');
    }
    if (req.method === 'POST' && path === '/api-key/v2/') {
      const b = body as { actorType?: string; actorTypeId?: number; roles?: string[] };
      if (b.actorType !== 'application' || !b.roles?.includes('provisioning-api-key'))
        return text(400, 'bad key request');
      const key = `prov${randomBytes(12).toString('hex')}`;
      this.provisioningKeys.set(key, b.actorTypeId!);
      return json(200, key);
    }
    const deviceKey = /^\/api-key\/device\/(\d+)\/device-key$/.exec(path);
    if (req.method === 'POST' && deviceKey) {
      const d = [...this.devices.values()].find((x) => x.id === Number(deviceKey[1]));
      if (!d) return text(404, 'Device not found');
      const key = `dev${randomBytes(12).toString('hex')}`;
      d.keys.push(key);
      return json(200, key);
    }
    if (req.method === 'POST' && path === '/download-config') return this.downloadConfig(body, json, text);
    if (req.method === 'GET' && path === '/download') return this.download(req, res, params, text);
    return text(404, `fake balena API: no route for ${req.method} ${path}`);
  }

  private applications(path: string, params: Record<string, string>, json: Json): Answered {
    const filter = params.$filter ?? '';
    const hostFor = /is_host eq true and is_for__device_type\/any\(dt:dt\/slug in \(([^)]*)\)\)/.exec(filter);
    if (hostFor) {
      const slugs = [...hostFor[1]!.matchAll(/'([^']*)'/g)].map((m) => m[1]!);
      const rows = slugs
        .filter((slug) => this.osVersions[slug])
        .map((slug, i) => ({
          id: 900 + i,
          is_for__device_type: [{ slug }],
          application_tag: [],
          owns__release: this.osVersions[slug]!.map((raw, j) => ({
            id: 5000 + j,
            known_issue_list: null,
            raw_version: raw,
            variant: '',
            phase: null,
            release_tag: [],
          })),
        }));
      return json(200, { d: rows });
    }
    const byId = /^\/v7\/application\((\d+)\)$/.exec(path);
    const bySlug = /slug eq '([^']*)'/.exec(filter);
    const fleet = byId
      ? this.fleets.find((f) => f.id === Number(byId[1]))
      : bySlug
        ? this.fleets.find((f) => f.slug.toLowerCase() === bySlug[1]!.toLowerCase())
        : undefined;
    return json(200, { d: fleet ? [this.fleetRow(fleet)] : [] });
  }

  private fleetRow(fleet: FakeFleet): Record<string, unknown> {
    const dt = this.deviceTypes.find((t) => t.slug === fleet.deviceType);
    return {
      id: fleet.id,
      slug: fleet.slug,
      app_name: fleet.slug.split('/').pop(),
      is_for__device_type: [
        { slug: fleet.deviceType, is_of__cpu_architecture: [{ slug: dt?.cpuArch ?? 'amd64' }] },
      ],
    };
  }

  private deviceTypeRows(path: string, params: Record<string, string>, json: Json): Answered {
    const alias = /is_referenced_by__alias eq '([^']*)'/.exec(params.$filter ?? '')?.[1];
    const dt = alias ? this.deviceTypes.find((t) => t.slug === alias) : undefined;
    void path;
    return json(200, { d: dt ? [{ slug: dt.slug, is_of__cpu_architecture: [{ slug: dt.cpuArch }] }] : [] });
  }

  private deviceRows(path: string, params: Record<string, string>, json: Json): Answered {
    const byUuid = /^\/v7\/device\(uuid='([^']*)'\)$/.exec(path);
    const filter = params.$filter ?? '';
    let found: FakeDevice[];
    if (byUuid) {
      found = this.devices.has(byUuid[1]!) ? [this.devices.get(byUuid[1]!)!] : [];
    } else {
      const inList = /uuid in \(([^)]*)\)/.exec(filter);
      const prefix = /startswith\(uuid,'([^']*)'\)/.exec(filter);
      const uuids = inList ? [...inList[1]!.matchAll(/'([^']*)'/g)].map((m) => m[1]!) : null;
      found = [...this.devices.values()].filter((d) =>
        uuids ? uuids.includes(d.uuid) : prefix ? d.uuid.startsWith(prefix[1]!) : true,
      );
    }
    return json(200, { d: found.map((d) => this.deviceRow(d, params.$select ?? '')) });
  }

  private deviceRow(d: FakeDevice, select: string): Record<string, unknown> {
    if (select.includes('is_connected_to_vpn')) {
      const polls = (this.polls.get(d.uuid) ?? 0) + 1;
      this.polls.set(d.uuid, polls);
      if (this.onlineAfterPolls !== null && polls >= this.onlineAfterPolls) d.online = true;
    }
    return {
      id: d.id,
      uuid: d.uuid,
      device_name: d.name,
      is_connected_to_vpn: d.online,
      api_heartbeat_state: d.online ? 'online' : 'unknown',
      belongs_to__application: [{ id: d.fleetId }],
      is_of__device_type: [{ slug: d.deviceType }],
    };
  }

  private targetState(uuid: string, bearer: string | undefined, json: Json, text: Text): Answered {
    const d = this.devices.get(uuid);
    if (!d || bearer === undefined || !d.keys.includes(bearer)) return text(401, 'Unauthorized');
    d.online = true;
    this.heartbeats.push({ uuid, at: Date.now() });
    return json(200, { [uuid]: { name: d.name, config: {}, apps: {} } });
  }

  private register(key: string, body: Record<string, unknown>, json: Json, text: Text): Answered {
    const fleetId = this.provisioningKeys.get(key);
    if (fleetId === undefined || fleetId !== body.application)
      return text(403, 'provisioning key is for another fleet');
    const uuid = String(body.uuid ?? '');
    if (!/^[0-9a-f]{32}$/.test(uuid)) return text(400, 'bad uuid');
    if (this.devices.has(uuid)) return text(409, 'uuid already registered');
    const dt = String(body.device_type ?? '');
    if (!this.deviceTypes.some((t) => t.slug === dt)) return text(400, 'unknown device type');
    const apiKey = `dev${randomBytes(12).toString('hex')}`;
    const d = this.addDevice({ uuid, name: `fake-${uuid.slice(0, 7)}`, fleetId, deviceType: dt });
    d.keys.push(apiKey);
    return json(201, { id: d.id, uuid, api_key: apiKey });
  }

  private downloadConfig(body: unknown, json: Json, text: Text): Answered {
    const b = body as Record<string, unknown>;
    const fleet = this.fleets.find((f) => f.id === b.appId);
    if (!fleet) return text(404, 'Application not found');
    const deviceType = String(b.deviceType ?? fleet.deviceType);
    if (!this.osVersions[deviceType]?.includes(String(b.version))) return text(400, 'unknown version');
    const key = `prov${randomBytes(12).toString('hex')}`;
    this.provisioningKeys.set(key, fleet.id);
    const config: Record<string, unknown> = {
      applicationId: fleet.id,
      deviceType,
      userId: 3,
      appUpdatePollInterval:
        (typeof b.appUpdatePollInterval === 'number' ? b.appUpdatePollInterval : 15) * 60000,
      listenPort: 48484,
      vpnPort: 443,
      apiEndpoint: this.deviceApiUrl ?? this.url,
      vpnEndpoint: 'vpn.fake.local',
      registryEndpoint: 'registry.fake.local',
      deltaEndpoint: 'https://delta.fake.local',
      apiKey: key,
      version: b.version,
      developmentMode: b.developmentMode === true,
    };
    if (b.network === 'wifi') {
      config.wifiSsid = b.wifiSsid;
      config.wifiKey = b.wifiKey;
    }
    return json(200, config);
  }

  private download(
    req: IncomingMessage,
    res: ServerResponse,
    params: Record<string, string>,
    text: Text,
    override?: Buffer,
  ): Answered {
    const { deviceType = '', version = '' } = params;
    if (!this.osVersions[deviceType]?.includes(version))
      return text(404, 'No such version for the device type');
    if (this.failDownloads > 0) {
      this.failDownloads--;
      return text(503, 'Service Unavailable');
    }
    const image = override ?? this.imageGz;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    if (start >= image.length) {
      res.writeHead(416, { 'content-range': `bytes */${image.length}` });
      res.end();
      return true;
    }
    const part = image.subarray(start);
    res.writeHead(range ? 206 : 200, {
      'content-type': 'application/octet-stream',
      'content-length': String(part.length),
      ...(range ? { 'content-range': `bytes ${start}-${image.length - 1}/${image.length}` } : {}),
      'accept-ranges': 'bytes',
    });
    const cut = this.cuts.shift();
    if (cut === undefined && this.throttle) {
      const { bytes, everyMs } = this.throttle;
      let at = 0;
      const next = () => {
        if (res.destroyed) return;
        const chunk = part.subarray(at, at + bytes);
        at += chunk.length;
        if (at >= part.length) res.end(chunk);
        else res.write(chunk, () => setTimeout(next, everyMs));
      };
      next();
      return true;
    }
    if (cut === undefined) {
      res.end(part);
      return true;
    }
    // A link that breaks mid-transfer: some bytes, then the connection is gone.
    res.write(part.subarray(0, cut), () => setTimeout(() => req.socket.destroy(), 20));
    return true;
  }
}

/** Handlers return what they answered with, so `return json(...)` ends a branch. */
type Answered = true;
type Json = (status: number, value: unknown) => Answered;
type Text = (status: number, value: string) => Answered;

/** `a=1&b=x%2By` → { a: '1', b: 'x+y' } ('+' stays a plus: the SDK percent-encodes). */
function parseQuery(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of raw.split('&')) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    const key = decodeURIComponent(eq < 0 ? pair : pair.slice(0, eq));
    out[key] = eq < 0 ? '' : decodeURIComponent(pair.slice(eq + 1));
  }
  return out;
}

export async function startFakeBalenaApi(options: FakeBalenaOptions): Promise<FakeBalenaApi> {
  return new FakeBalenaApi(options).start();
}
