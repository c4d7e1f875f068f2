import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, Server } from 'node:https';
import { IncomingMessage, ServerResponse } from 'node:http';
import { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Authenticator, bearerToken, challengeHeader } from './auth';
import { ensureTlsMaterial } from './certs';
import { VaultClock } from './clock';
import { DataDirLock, makeDataDir } from './data-dir-lock';
import { AccessDenials, DenySpec, validateDenySpec } from './denials';
import { errors, KeyVaultHttpError } from './errors';
import { VaultEvent, VaultEvents } from './events';
import { FaultSpec } from './faults';
import { assertApiVersion } from './http/api-version';
import { handleAdminRequest } from './http/admin';
import { parseJsonObject, readBody, send, sendError } from './http/io';
import { isKeyOperation, matchRoute } from './http/router';
import { KeyVaultEmulatorOptions, ResolvedOptions, resolveOptions } from './options';
import { KeysApi } from './keys/handlers';
import { KeyLifetimeActions, LifetimeActionsReport } from './keys/lifetime-actions';
import { KeyVersionRecord } from './keys/model';
import { KeyStore } from './keys/store';
import { KEY_FIELDS, SECRET_FIELDS, StorePersistence, ValueCipher } from './persistence';
import { emptyPage, RequestFaults } from './request-faults';
import { SecretsApi } from './secrets/handlers';
import { SecretVersionRecord } from './secrets/model';
import { SecretStore } from './secrets/store';
import { EmulatorStats, StatsCollector } from './stats';
import { chargeOf, ThrottleBudgets } from './throttle-budgets';

const ADMIN_PREFIX = '/_emulator/';
const PURGE_SWEEP_MS = 60_000;

const BANNER = [
  '',
  '################################################################################',
  '#  LOCAL KEY VAULT EMULATOR - FOR DEVELOPMENT AND TESTS ONLY                   #',
  '#  NOT Azure Key Vault. Do NOT store production or real secrets in it.         #',
  '#  Its CA key and store key sit next to the data on this disk.                 #',
  '################################################################################',
  '',
].join('\n');

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * A local Azure Key Vault (secrets and keys APIs) over HTTPS for development, tests and benchmarks.
 * The official SecretClient, KeyClient and CryptographyClient work against it unmodified except for
 * `disableChallengeResourceVerification` and trusting `caCertPem` (`tlsOptions: { ca }`).
 */
export class KeyVaultEmulator {
  readonly vaultUrl: string;
  readonly port: number;
  readonly caCertPem: string;
  readonly caCertPath: string;
  readonly dataDir: string;

  private readonly sweepTimer: NodeJS.Timeout;
  private readonly lifetimeTimer?: NodeJS.Timeout;
  /** The lifetime-action checks, one after another (the timer's and those asked for). */
  private lifetimeRuns: Promise<unknown> = Promise.resolve();
  private stopping?: Promise<void>;
  private readonly lock?: DataDirLock;

  private constructor(
    private readonly options: ResolvedOptions,
    private readonly server: Server,
    private readonly stores: { secrets: SecretStore; keys: KeyStore },
    private readonly persistence: { secrets: StorePersistence<SecretVersionRecord>; keys: StorePersistence<KeyVersionRecord> },
    private readonly apis: { secrets: SecretsApi; keys: KeysApi },
    private readonly sockets: Set<Socket>,
    private readonly authenticator: Authenticator,
    /** Azure's budgets for a vault: secret writes (Set Secret), key creates, and every other transaction (weighted). */
    private throttle: ThrottleBudgets | undefined,
    private readonly faults: RequestFaults,
    private readonly denials: AccessDenials,
    private readonly statsCollector: StatsCollector,
    private readonly ownsDataDir: boolean,
    /** The vault's clock, and what it applies on its own as time passes: rotation policies (and the events they record). */
    private readonly lifetime: { clock: VaultClock; actions: KeyLifetimeActions; events: VaultEvents },
    init: { vaultUrl: string; port: number; caCertPem: string; caCertPath: string; dataDir: string; lock?: DataDirLock },
  ) {
    this.vaultUrl = init.vaultUrl;
    this.port = init.port;
    this.caCertPem = init.caCertPem;
    this.caCertPath = init.caCertPath;
    this.dataDir = init.dataDir;
    this.lock = init.lock;
    this.sweepTimer = setInterval(() => {
      this.stores.secrets.purgeExpired();
      this.stores.keys.purgeExpired();
    }, PURGE_SWEEP_MS);
    this.sweepTimer.unref();
    if (options.lifetimeActionsCheckMs > 0) {
      this.lifetimeTimer = setInterval(() => {
        this.runLifetimeActions().catch((err: unknown) => console.error('[keyvault-emulator] applying rotation policies failed:', (err as Error).message));
      }, options.lifetimeActionsCheckMs);
      this.lifetimeTimer.unref();
    }
  }

  static async start(options: KeyVaultEmulatorOptions = {}): Promise<KeyVaultEmulator> {
    const o = resolveOptions(options);
    const ownsDataDir = o.dataDir === undefined;
    const dataDir = ownsDataDir ? mkdtempSync(join(tmpdir(), 'kv-emulator-')) : resolve(o.dataDir!);
    makeDataDir(dataDir);
    // A temp dir is this vault's alone; a given one may be a running host's.
    const lock = ownsDataDir ? undefined : DataDirLock.acquire(dataDir);
    try {
      const tls = ensureTlsMaterial(dataDir, o.host);
      const clock = new VaultClock(o.now);
      const storeOptions = {
        now: () => clock.now(),
        softDeleteRetentionDays: o.softDeleteRetentionDays,
        purgeProtection: o.purgeProtection,
        operationDelayMs: o.operationDelayMs,
        vaultName: 'emulator',
      };
      const stores = { secrets: new SecretStore(storeOptions), keys: new KeyStore(storeOptions) };
      const cipher = ValueCipher.fromDataDir(dataDir);
      const persistence = {
        secrets: new StorePersistence(dataDir, stores.secrets, cipher, SECRET_FIELDS),
        keys: new StorePersistence(dataDir, stores.keys, cipher, KEY_FIELDS),
      };
      for (const [kind, p] of Object.entries(persistence)) {
        p.load();
        stores[kind as keyof typeof stores].purgeExpired();
        p.attach();
      }
      const authenticator = new Authenticator(o.auth);
      const throttle = ThrottleBudgets.of(o.throttle);
      const denials = new AccessDenials({ tenantId: o.tenantId, vaultName: storeOptions.vaultName });
      const stats = new StatsCollector();
      const faults = new RequestFaults(stats);

      const ready: { emulator?: KeyVaultEmulator } = {};
      const server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
        if (!ready.emulator) {
          res.destroy();
          return;
        }
        ready.emulator.handle(req, res).catch((err: unknown) => {
          console.error('[keyvault-emulator] unexpected error:', (err as Error).message);
          if (!res.headersSent) sendError(req, res, errors.internal());
        });
      });
      server.keepAliveTimeout = 30_000;
      const sockets = new Set<Socket>();
      server.on('connection', (s: Socket) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      });
      server.on('tlsClientError', () => undefined);
      await new Promise<void>((resolveListen, reject) => {
        server.once('error', reject);
        server.listen(o.port, o.host, () => {
          server.off('error', reject);
          resolveListen();
        });
      });
      const port = (server.address() as AddressInfo).port;
      const vaultUrl = `https://${urlHost(o.host)}:${port}`;
      const apis = { secrets: new SecretsApi(stores.secrets, vaultUrl), keys: new KeysApi(stores.keys, vaultUrl) };
      const events = new VaultEvents();
      const lifetime = { clock, events, actions: new KeyLifetimeActions(stores.keys, events, vaultUrl, () => clock.now()) };
      const emulator = new KeyVaultEmulator(o, server, stores, persistence, apis, sockets, authenticator, throttle, faults, denials, stats, ownsDataDir, lifetime, {
        vaultUrl,
        port,
        caCertPem: tls.caCertPem,
        caCertPath: tls.caCertPath,
        dataDir,
        lock,
      });
      ready.emulator = emulator;
      if (!o.quiet) console.warn(`${BANNER}Key Vault emulator listening at ${vaultUrl} (CA: ${tls.caCertPath})\n`);
      return emulator;
    } catch (err) {
      lock?.release();
      if (ownsDataDir) rmSync(dataDir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Adds a fault for subsequent vault requests (admin endpoints are never faulted). */
  injectFault(spec: FaultSpec): void {
    this.faults.add(spec);
  }

  clearFaults(): void {
    this.faults.clear();
  }

  /**
   * Refuses operations from now on with Azure's 403 for a caller without the permission (RBAC or access policy),
   * until clearDenials or reset: for tests of what a client does when its identity lacks a role.
   */
  deny(spec: DenySpec): void {
    this.denials.add(validateDenySpec(spec));
  }

  clearDenials(): void {
    this.denials.clear();
  }

  /**
   * Replaces the throttling budgets, as the `throttle` option gives them (`false`: none), their windows starting
   * afresh: e.g. for a test's set-up that makes more keys than Azure lets a vault create in 10 s.
   */
  setThrottle(throttle: KeyVaultEmulatorOptions['throttle']): void {
    this.throttle = ThrottleBudgets.of(resolveOptions({ throttle }).throttle);
  }

  /** The vault's time: the `now` option's (else the system's), plus what `advanceTime` added. */
  now(): Date {
    return new Date(this.lifetime.clock.now());
  }

  /**
   * Moves the vault's clock `ms` forward (a non-negative integer), then applies what became due meanwhile, as Key Vault
   * would have: a test sees a 30-day rotation policy act without waiting 30 days. Several due dates skipped at once
   * act once, at the new time.
   */
  async advanceTime(ms: number): Promise<LifetimeActionsReport> {
    this.lifetime.clock.advance(ms);
    return this.runLifetimeActions();
  }

  /**
   * Applies the keys' rotation policies now (the vault also does every `lifetimeActionsCheckMs`): a due Rotate creates a
   * new version as a rotate call does, a due Notify records a KeyNearExpiry event (`events()`). On disk once it returns.
   */
  runLifetimeActions(): Promise<LifetimeActionsReport> {
    const run = this.lifetimeRuns.then(async () => {
      if (this.stopping) return { rotated: [], notified: [] };
      const report = await this.lifetime.actions.run();
      await this.durable();
      return report;
    });
    this.lifetimeRuns = run.catch(() => undefined);
    return run;
  }

  /** What the vault would have published to Event Grid (KeyNearExpiry), oldest first. */
  events(): VaultEvent[] {
    return this.lifetime.events.all();
  }

  clearEvents(): void {
    this.lifetime.events.clear();
  }

  stats(): EmulatorStats {
    return this.statsCollector.snapshot();
  }

  resetStats(): void {
    this.statsCollector.reset();
  }

  private changeCount(): number {
    return this.stores.secrets.changeCount + this.stores.keys.changeCount;
  }

  /** Every change so far on disk; a failed write answers 500 (the change is not acknowledged). */
  private async durable(): Promise<void> {
    try {
      await Promise.all([this.persistence.secrets.durable(), this.persistence.keys.durable()]);
    } catch {
      throw errors.internal();
    }
  }

  /** Closes the server and every socket, flushes persistence, removes an owned temp dataDir. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.faults.stop();
      clearInterval(this.sweepTimer);
      clearInterval(this.lifetimeTimer);
      await this.lifetimeRuns;
      const closed = new Promise<void>((r) => this.server.close(() => r()));
      for (const s of this.sockets) s.destroy();
      this.server.closeAllConnections?.();
      await closed;
      await Promise.all([this.persistence.secrets.close(), this.persistence.keys.close()]);
      this.lock?.release();
      if (this.ownsDataDir) rmSync(this.dataDir, { recursive: true, force: true });
    })();
    return this.stopping;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://emulator.invalid');
    if (url.pathname.startsWith(ADMIN_PREFIX)) return this.handleAdmin(req, res, url);

    const method = (req.method ?? 'GET').toUpperCase();
    const route = matchRoute(method, url.pathname);
    const operation = route.operation;
    let raw: Buffer;
    try {
      raw = await readBody(req);
    } catch (err) {
      if (err instanceof KeyVaultHttpError) {
        this.statsCollector.record(operation, err.status);
        sendError(req, res, err, { Connection: 'close' });
      } else {
        res.destroy();
      }
      return;
    }

    // 1. The bearer challenge comes before anything is validated.
    const token = bearerToken(req.headers.authorization);
    if (!token) {
      this.statsCollector.record('challenge', 401);
      sendError(req, res, errors.unauthorized(), { 'WWW-Authenticate': challengeHeader(this.options.tenantId) });
      return;
    }
    try {
      await this.authenticator.verify(token);
    } catch (err) {
      const e = err instanceof KeyVaultHttpError ? err : errors.unauthorized();
      this.statsCollector.record(operation, e.status);
      sendError(req, res, e, { 'WWW-Authenticate': challengeHeader(this.options.tenantId) });
      return;
    }

    // 2. Throttling (per vault, and per subscription when it has one; a refused request does not count, as in Azure).
    const subscription = this.options.subscription?.budgets;
    if (this.throttle || subscription) {
      const name = route.kind === 'op' ? route.name : undefined;
      const keyOf = () => (name === undefined ? undefined : this.stores.keys.addressedVersion(name, route.kind === 'op' ? route.version : undefined));
      const charge = chargeOf(operation, raw, keyOf, route.kind === 'op' && isKeyOperation(route.operation));
      const t = ThrottleBudgets.take(charge, [this.throttle, subscription]);
      if (!t.ok) {
        this.statsCollector.record(operation, 429);
        sendError(req, res, errors.throttled(t.retryAfterSeconds));
        return;
      }
    }

    // 3. Authorization: a denied request has passed the throttle and counts, as every answer but a 429 does in Azure.
    const denied = this.denials.check(operation, route.kind === 'op' ? route.name : undefined);
    if (denied) {
      this.statsCollector.record(operation, denied.status);
      sendError(req, res, denied);
      return;
    }

    // 4. Injected faults (request-faults.ts): a delay, then a reset or a status answer instead of the operation.
    const fault = await this.faults.beforeOperation(operation, route.kind === 'op' ? route.name : undefined, req, res);
    if (!fault) return;

    // 5. The operation itself.
    let status: number;
    try {
      const apiVersion = assertApiVersion(url.searchParams.get('api-version'));
      if (route.kind === 'notFound') throw errors.notFoundRoute(url.pathname);
      if (route.kind === 'methodNotAllowed') throw errors.methodNotAllowed(method, url.pathname);
      const body = parseJsonObject(raw);
      const request = { name: route.name, version: route.version, query: url.searchParams, apiVersion, body, origin: originOf(req.headers.host) };
      const changesBefore = this.changeCount();
      const result =
        fault.kind === 'emptyPage'
          ? emptyPage(request.origin ?? this.vaultUrl, url)
          : isKeyOperation(route.operation)
            ? await this.apis.keys.handle({ ...request, operation: route.operation })
            : this.apis.secrets.handle({ ...request, operation: route.operation });
      // A write is answered once it is on disk: a crash after the answer must not lose it. (Reads and the
      // keys' cryptography change nothing, and never wait for another request's fsync.)
      if (this.changeCount() !== changesBefore) await this.durable();
      if (fault.responseLatencyMs && !(await this.faults.delay(fault.responseLatencyMs))) return;
      status = result.status;
      send(req, res, result.status, result.body);
    } catch (err) {
      if (!(err instanceof KeyVaultHttpError)) throw err;
      status = err.status;
      sendError(req, res, err);
    }
    this.statsCollector.record(operation, status);
  }

  /** The test controls under `/_emulator/` (http/admin.ts): this vault's own, with its counts. */
  private handleAdmin(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    return handleAdminRequest(req, res, url, {
      health: () => ({ status: 'ok', vaultUrl: this.vaultUrl, secrets: this.stores.secrets.size, keys: this.stores.keys.size, activeFaults: this.faults.active, activeDenials: this.denials.active }),
      time: () => ({ now: this.now().toISOString(), offsetMs: this.lifetime.clock.offset }),
      stats: () => this.stats(),
      reset: () => {
        this.clearFaults();
        this.clearDenials();
        this.resetStats();
        this.clearEvents();
      },
      advanceTime: (ms) => this.advanceTime(ms),
      runLifetimeActions: () => this.runLifetimeActions(),
      events: () => this.events(),
      clearEvents: () => this.clearEvents(),
      injectFault: (spec) => {
        this.injectFault(spec);
        return this.faults.active;
      },
      clearFaults: () => this.clearFaults(),
      deny: (spec) => {
        this.deny(spec);
        return this.denials.active;
      },
      clearDenials: () => this.clearDenials(),
    });
  }
}

/**
 * The origin the client called (`localhost` or `127.0.0.1`, say), for next links: Azure answers with
 * the name the client uses, and a client refuses a continuation link to another origin.
 */
function originOf(host: string | undefined): string | undefined {
  return host && /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(host) ? `https://${host}` : undefined;
}
