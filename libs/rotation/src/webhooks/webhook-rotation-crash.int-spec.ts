/**
 * Integration: a rotation interrupted between its steps (an exception thrown in the middle, then the
 * process "restarts" as a fresh app on the same database) leaves the previous secret current and is
 * completed by the next run; and the job with two app instances on one PostgreSQL rotates each due
 * secret exactly once.
 */
import { randomUUID } from 'node:crypto';
import { AuditLogEntry } from '@app/audit';
import { LOCK_KEYS, ManualClock, type OperationContext, OutboxEventEntity } from '@app/common';
import { CredentialsService } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, DATABASE_KINDS, endLockSessionOfKey, rejection, type TestDatabase, type TestDatabaseKind } from '@app/testing';
import { Webhook } from 'standardwebhooks';
import { endRotationLockSession } from '../rotation-stack.testing';
import { WebhookSecretState } from './persistence/webhook-secret-version.entity';
import { WebhookRotationInProgressError } from './webhook-secret.errors';
import type { WebhookRotationResult } from './webhook-secret-rotator';
import { WebhookSecretStates } from './webhook-secret-states';
import { RecordingUpdater, startWebhookStack, type WebhookStack } from './testing/webhook-stack';

const DAY = 86_400_000;
const body = '{"type":"ping"}';

function harness(kind: TestDatabaseKind) {
  const h = {
    emu: undefined as unknown as KeyVaultEmulator,
    db: undefined as unknown as TestDatabase,
    clock: new ManualClock(new Date()),
    updater: new RecordingUpdater(),
    stacks: [] as WebhookStack[],
    tenantId: `t-${randomUUID().slice(0, 8)}`,
    async start(): Promise<WebhookStack> {
      const s = await startWebhookStack(h.db, h.emu, h.clock);
      s.updaters.register('stripe', h.updater);
      h.stacks.push(s);
      return s;
    },
  };
  beforeAll(async () => {
    h.emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    h.db = await createTestDatabase(kind);
  });
  afterAll(async () => {
    for (const s of h.stacks) await s.moduleRef.close().catch(() => undefined);
    await h.emu?.stop();
    await h.db?.drop();
  });
  return h;
}

/** Headers the reference signs with `secret` at the clock's time. */
function referenceSigned(clock: ManualClock, secret: string) {
  const at = new Date(Math.floor(clock.now().getTime() / 1000) * 1000);
  const id = `msg_${randomUUID()}`;
  return { 'webhook-id': id, 'webhook-timestamp': String(at.getTime() / 1000), 'webhook-signature': new Webhook(secret).sign(id, at, body) };
}

describe.each(DATABASE_KINDS)('webhook rotation interrupted between steps on %s', (kind) => {
  const h = harness(kind);
  let seq = 0;
  const ctx = (): OperationContext => ({ tenantId: h.tenantId, actor: { id: 'user:ops' } });
  const target = () => ({ tenantId: h.tenantId, integrationId: 'stripe', connectionId: `acct-${++seq}` });

  it('crash inside the promotion (after CredentialsService.rotate): previous current; a fresh instance completes with the pushed value', async () => {
    const a = await h.start();
    const t = target();
    const { credential, secret: oldSecret } = await a.service.create(ctx(), t);
    const before = h.updater.calls.length;
    jest.spyOn(a.moduleRef.get(WebhookSecretStates), 'demote').mockRejectedValueOnce(new Error('process killed'));
    await rejection(a.service.rotate(ctx(), credential.id));
    const pushed = h.updater.calls[before].newSecret;
    await a.moduleRef.close();

    const b = await h.start();
    const current = await b.credentials.get(ctx(), credential.id);
    expect([current.value, current.metadata.version]).toEqual([oldSecret, 1]);
    expect((await b.versionRows(credential.id)).map((r) => r.state).sort()).toEqual([WebhookSecretState.CURRENT, WebhookSecretState.PENDING]);
    // Meanwhile: signed with the old secret; both the old and the pushed one verify.
    expect(new Webhook(oldSecret).verify(body, { ...(await b.service.signWebhook(t, 'm1', new Date(), body)) })).toBeTruthy();
    expect((await b.service.verifyWebhook(t, body, referenceSigned(h.clock, pushed))).version).toBeNull();

    expect(await b.job.runOnce()).toMatchObject({ acquired: true, resumed: 1, failed: 0 });
    expect(h.updater.calls.slice(before).map((c) => c.newSecret)).toEqual([pushed, pushed]);
    const after = await b.credentials.get(ctx(), credential.id);
    expect([after.value, after.metadata.version]).toEqual([pushed, 2]);
    expect((await b.service.verifyWebhook(t, body, referenceSigned(h.clock, oldSecret))).version).toBe(1);
    await b.moduleRef.close();
  });

  it('crash after the pending secret is written, before the push: nothing pushed, not accepted; the next run pushes it once', async () => {
    const a = await h.start();
    const t = target();
    const { credential, secret: oldSecret } = await a.service.create(ctx(), t);
    const before = h.updater.calls.length;
    // The first read after the prepare commit is the staging value's: the "process" dies there.
    jest.spyOn(a.moduleRef.get(CredentialsService), 'get').mockRejectedValueOnce(new Error('process killed'));
    await rejection(a.service.rotate(ctx(), credential.id));
    expect(h.updater.calls.length).toBe(before);
    await a.moduleRef.close();

    const b = await h.start();
    expect((await b.credentials.get(ctx(), credential.id)).value).toBe(oldSecret);
    const pending = (await b.versionRows(credential.id)).find((r) => r.state === WebhookSecretState.PENDING);
    expect(pending).toMatchObject({ pushStartedAt: null, attempts: 0 });
    const staged = (await b.credentials.get(ctx(), pending?.stagingCredentialId as string)).value;
    expect((await rejection(b.service.verifyWebhook(t, body, referenceSigned(h.clock, staged)))).name).toBe('WebhookSignatureMismatchError');

    expect(await b.job.runOnce()).toMatchObject({ acquired: true, resumed: 1 });
    expect(h.updater.calls.slice(before).map((c) => [c.newSecret, c.rotationId])).toEqual([[staged, pending?.id]]);
    expect((await b.credentials.get(ctx(), credential.id)).value).toBe(staged);
    await b.moduleRef.close();
  });
});

describe('webhook-secret-rotation job with two app instances on one PostgreSQL', () => {
  const h = harness('postgres');
  const ctx = (): OperationContext => ({ tenantId: h.tenantId, actor: { id: 'user:ops' } });
  let a: WebhookStack;
  let b: WebhookStack;

  beforeAll(async () => {
    a = await h.start();
    b = await h.start();
  });

  /** The rotation lock's session of `credentialId` ends (a failover, pg_terminate_backend) while its holder goes on. */
  const endLockSession = (credentialId: string) => endRotationLockSession(a.ds, credentialId);

  /** a's rotation stalls (until `stalled` resolves), its lock session ends, and b completes that rotation and a later one. */
  async function supersededWhileStalled(credentialId: string, stalled: Promise<void>) {
    const onA = a.service.rotate(ctx(), credentialId);
    await stalled;
    await endLockSession(credentialId);
    const resumed = await b.service.rotate(ctx(), credentialId);
    const later = await b.service.rotate(ctx(), credentialId);
    return { onA, resumed, later };
  }

  /**
   * `slow-provider` on both replicas, and the one secret it signs with (the last one installed). a's calls are slow:
   * they land when released (`onProvider` once the first is made); from its `failFrom`th on they fail.
   */
  function slowProvider(failFrom = Infinity) {
    const provider = { secret: '' };
    let release = () => undefined as void;
    const held = new Promise<void>((r) => (release = r));
    let reached = () => undefined as void;
    const onProvider = new Promise<void>((r) => (reached = r));
    const pushedByA: string[] = [];
    const unregisterA = a.updaters.register('slow-provider', {
      update: async ({ newSecret, rotationId }) => {
        pushedByA.push(rotationId);
        reached();
        await held;
        if (pushedByA.length >= failFrom) throw new Error('provider answered 503');
        provider.secret = newSecret;
      },
    });
    const unregisterB = b.updaters.register('slow-provider', { update: async ({ newSecret }) => void (provider.secret = newSecret) });
    return { provider, pushedByA, onProvider, release, unregister: () => (unregisterA(), unregisterB()) };
  }

  it('rotates only the due secrets, each once; a second run rotates nothing; replicas see the new secret', async () => {
    const t0 = h.clock.now();
    const due1 = await a.service.create(ctx(), { integrationId: 'stripe', connectionId: 'due-1' });
    const due2 = await b.service.create(ctx(), { integrationId: 'stripe', connectionId: 'due-2' });
    h.clock.advance(100 * DAY);
    const fresh = await a.service.create(ctx(), { integrationId: 'stripe', connectionId: 'fresh' });
    h.clock.set(new Date(t0.getTime() + 181 * DAY));
    const before = h.updater.calls.length;

    const runs = await Promise.all([a.job.runOnce(), b.job.runOnce(), a.job.runOnce(), b.job.runOnce()]);
    const rotated = runs.reduce((n, r) => n + (r.acquired ? r.rotated : 0), 0);
    expect(rotated).toBe(2);
    expect(h.updater.calls.slice(before).map((c) => c.credentialId).sort()).toEqual([due1.credential.id, due2.credential.id].sort());
    expect((await a.credentials.getMetadata(ctx(), due1.credential.id)).version).toBe(2);
    expect((await a.credentials.getMetadata(ctx(), due2.credential.id)).version).toBe(2);
    expect((await a.credentials.getMetadata(ctx(), fresh.credential.id)).version).toBe(1);

    const again = await Promise.all([a.job.runOnce(), b.job.runOnce()]);
    expect(again.reduce((n, r) => n + (r.acquired ? r.rotated + r.resumed : 0), 0)).toBe(0);
    expect(h.updater.calls.length).toBe(before + 2);

    // b rotated or not, its cache follows the row version: it signs with the new secret.
    const t = { tenantId: h.tenantId, integrationId: 'stripe', connectionId: 'due-1' };
    const newSecret = (await a.credentials.get(ctx(), due1.credential.id)).value;
    expect(new Webhook(newSecret).verify(body, { ...(await b.service.signWebhook(t, 'm2', new Date(), body)) })).toBeTruthy();
  });

  it('one rotation per credential across replicas: concurrent rotate() calls push once', async () => {
    const { credential } = await a.service.create(ctx(), { integrationId: 'stripe', connectionId: 'manual' });
    const since = h.clock.now();
    const before = h.updater.calls.length;
    const results = await Promise.allSettled([
      a.service.rotate(ctx(), credential.id, { ifCurrentSince: since }),
      b.service.rotate(ctx(), credential.id, { ifCurrentSince: since }),
    ]);
    const outcomes = results.map((r) => (r.status === 'fulfilled' ? r.value.outcome : r.reason instanceof WebhookRotationInProgressError ? 'in_progress' : String(r.reason)));
    expect(outcomes.filter((o) => o === 'rotated')).toHaveLength(1);
    expect(outcomes.every((o) => ['rotated', 'not_due', 'in_progress'].includes(o))).toBe(true);
    expect(h.updater.calls.length).toBe(before + 1);
    expect((await b.credentials.getMetadata(ctx(), credential.id)).version).toBe(2);
  });

  // A lost connection frees an advisory lock while its holder goes on: b resumes and completes the same rotation,
  // before a's promotion starts or while it runs (between its metadata read and its commit).
  it.each(['before', 'while'] as const)(
    'a push that outlives its lost lock session, the rotation completed on the other replica %s the promotion: it answers that rotation and changes nothing',
    async (when) => {
      const { credential, secret: oldSecret } = await a.service.create(ctx(), { integrationId: 'slow-provider', connectionId: `lost-lock-${when}` });
      let release = () => undefined as void;
      const held = new Promise<void>((r) => (release = r));
      let reached = () => undefined as void;
      const onProvider = new Promise<void>((r) => (reached = r));
      const unregisterA = a.updaters.register('slow-provider', { update: async () => (reached(), held) });
      const unregisterB = b.updaters.register('slow-provider', { update: async () => undefined });
      try {
        const onA = a.service.rotate(ctx(), credential.id);
        await onProvider;
        await endLockSession(credential.id);
        let onB: Promise<WebhookRotationResult>;
        if (when === 'before') {
          onB = Promise.resolve(await b.service.rotate(ctx(), credential.id));
        } else {
          // a's next metadata read is its promotion's: b completes the rotation right then.
          const getMetadata = a.credentials.getMetadata.bind(a.credentials);
          let done: Promise<WebhookRotationResult> | undefined;
          jest.spyOn(a.credentials, 'getMetadata').mockImplementationOnce(async (...args) => {
            done = b.service.rotate(ctx(), credential.id);
            await done;
            return getMetadata(...args);
          });
          onB = (async () => (await onA, done as Promise<WebhookRotationResult>))();
        }
        release();
        const [fromA, fromB] = await Promise.all([onA, onB]);
        expect(fromB).toMatchObject({ outcome: 'rotated', version: 2, resumed: true });
        expect(fromA).toMatchObject({ outcome: 'rotated', rotationId: fromB.rotationId, version: 2, previousVersion: 1 });
        expect((await b.credentials.getMetadata(ctx(), credential.id)).version).toBe(2);
        expect((await b.versionRows(credential.id)).map((r) => [r.state, r.credentialVersion])).toEqual([
          [WebhookSecretState.LIVE, 1],
          [WebhookSecretState.CURRENT, 2],
        ]);
        const t = { tenantId: h.tenantId, integrationId: 'slow-provider', connectionId: `lost-lock-${when}` };
        expect((await b.service.verifyWebhook(t, body, referenceSigned(h.clock, oldSecret))).version).toBe(1);
        // No failure reported for a rotation that succeeded: no rotation_failed event (its notification), no failed push
        // audited; only a's refused credential write when it had begun (rolled back, audited by the credentials lib).
        const events = (await a.ds.getRepository(OutboxEventEntity).find()).filter((e) => JSON.stringify(e.payload).includes(credential.id)).map((e) => e.name);
        expect(events.filter((n) => n.startsWith('webhook_secret.'))).toEqual(['webhook_secret.rotated']);
        const failures = (await a.ds.getRepository(AuditLogEntry).find()).filter((r) => r.resource.includes(credential.id) && r.result !== 'success');
        expect(failures.map((r) => [r.action, r.errorCode])).toEqual(when === 'before' ? [] : [['rotate', '3122:WEBHOOK_ROTATION_IN_PROGRESS']]);
      } finally {
        release();
        unregisterA();
        unregisterB();
        jest.restoreAllMocks();
      }
    },
  );

  // The same, but b also completes a later rotation before a's delayed push lands: the provider then holds an
  // older secret than the current one, and signs with it — webhooks fail verification once its overlap ends.
  it.each(['succeeds', 'fails'] as const)('a push that outlives its lost lock session and lands after a later rotation: the current secret is pushed again (it %s); audited', async (repair) => {
    const connectionId = `lost-lock-superseded-${repair}`;
    const { credential } = await a.service.create(ctx(), { integrationId: 'slow-provider', connectionId });
    const { provider, pushedByA, onProvider, release, unregister } = slowProvider(repair === 'fails' ? 2 : Infinity);
    try {
      const { onA, resumed, later } = await supersededWhileStalled(credential.id, onProvider);
      expect([resumed.version, later.version]).toEqual([2, 3]);
      release();
      const fromA = await onA;
      expect(fromA).toMatchObject({ outcome: 'rotated', rotationId: resumed.rotationId, version: 2 });

      const current = await b.credentials.get(ctx(), credential.id);
      expect(current.metadata.version).toBe(3);
      expect(pushedByA).toEqual([resumed.rotationId, later.rotationId]); // the repair: a retry of the current rotation's push
      const t = { tenantId: h.tenantId, integrationId: 'slow-provider', connectionId };
      // What a receiver cares about: the provider signs with the current secret, which verifies past every overlap;
      // when the repair failed it still holds version 2's, and the operator is told (a rotation_failed notification).
      expect((await b.service.verifyWebhook(t, body, referenceSigned(h.clock, provider.secret))).version).toBe(repair === 'succeeds' ? 3 : 2);
      const rows = (await a.ds.getRepository(AuditLogEntry).find()).filter((r) => r.resource.includes(credential.id));
      const superseded = rows.filter((r) => r.action === 'webhook_secret.push_superseded');
      expect(superseded.map((r) => [r.result, r.errorCode, r.details])).toEqual([
        ['failure', 'PUSH_SUPERSEDED', expect.objectContaining({ rotationId: resumed.rotationId, currentRotationId: later.rotationId, repaired: repair === 'succeeds' })],
      ]);
      const events = (await a.ds.getRepository(OutboxEventEntity).find()).filter((e) => JSON.stringify(e.payload).includes(credential.id));
      expect(events.filter((e) => e.name === 'webhook_secret.rotation_failed').map((e) => (e.payload as { step?: string }).step)).toEqual(repair === 'succeeds' ? [] : ['repair']);
      expect(JSON.stringify([rows, events])).not.toContain(current.value);
    } finally {
      release();
      unregister();
    }
  });

  // The same, but an operator discards a's pending rotation on b (…/secret/discard) and b rotates again before a's
  // push lands: a's rotation never happened. It answers IN_PROGRESS, and its request leaves one failure row (each one
  // counts toward the actor's failure threshold): the repair's push_superseded, not also a refused rotate.
  it('a push that outlives its lost lock session, its rotation discarded on the other replica before a later one: IN_PROGRESS, the current secret pushed again, one failure row for the request', async () => {
    const connectionId = 'lost-lock-discarded';
    const { credential } = await a.service.create(ctx(), { integrationId: 'slow-provider', connectionId });
    const { provider, pushedByA, onProvider, release, unregister } = slowProvider();
    const request: OperationContext = { tenantId: h.tenantId, actor: { id: 'user:ops-a' }, correlationId: `req-${randomUUID()}` };
    try {
      const onA = a.service.rotate(request, credential.id);
      await onProvider;
      await endLockSession(credential.id);
      const discarded = await b.rotator.discard(ctx(), credential.id);
      const later = await b.service.rotate(ctx(), credential.id);
      expect(later).toMatchObject({ outcome: 'rotated', version: 2 });
      release();
      expect(await rejection(onA)).toMatchObject({ code: 3122, codeName: 'WEBHOOK_ROTATION_IN_PROGRESS' });

      const current = await b.credentials.get(ctx(), credential.id);
      expect(current.metadata.version).toBe(2);
      expect(pushedByA).toEqual([discarded.rotationId, later.rotationId]); // the discarded value, then the repair
      const t = { tenantId: h.tenantId, integrationId: 'slow-provider', connectionId };
      expect((await b.service.verifyWebhook(t, body, referenceSigned(h.clock, provider.secret))).version).toBe(2);
      const rows = (await a.ds.getRepository(AuditLogEntry).find()).filter((r) => r.correlationId === request.correlationId);
      expect(rows.filter((r) => r.result !== 'success').map((r) => [r.actorId, r.action, r.errorCode, r.details])).toEqual([
        [
          'user:ops-a',
          'webhook_secret.push_superseded',
          'PUSH_SUPERSEDED',
          expect.objectContaining({ rotationId: discarded.rotationId, state: WebhookSecretState.RETIRED, currentRotationId: later.rotationId, repaired: true }),
        ],
      ]);
      expect(JSON.stringify(rows)).not.toContain(current.value);
    } finally {
      release();
      unregister();
    }
  });

  // The lock session ends before a's push starts (a stalls on its read of the staging value, before or after the read
  // itself), and b completes a's rotation and a later one.
  it.each(['before', 'after'] as const)('a rotation whose lock session ended before its push, superseded meanwhile (stalled %s its staging read): it pushes nothing and answers the rotation b completed', async (when) => {
    const connectionId = `lost-lock-before-push-${when}`;
    const { credential } = await a.service.create(ctx(), { integrationId: 'slow-provider', connectionId });
    const provider = { secret: '' };
    const pushedByA: string[] = [];
    const unregisterA = a.updaters.register('slow-provider', { update: async ({ newSecret, rotationId }) => void (pushedByA.push(rotationId), (provider.secret = newSecret)) });
    const unregisterB = b.updaters.register('slow-provider', { update: async ({ newSecret }) => void (provider.secret = newSecret) });
    let release = () => undefined as void;
    const held = new Promise<void>((r) => (release = r));
    let reached = () => undefined as void;
    const onRead = new Promise<void>((r) => (reached = r));
    // a's first read after its prepare commit is the staging value's, right before its push: it stalls there.
    const get = a.credentials.get.bind(a.credentials);
    jest.spyOn(a.credentials, 'get').mockImplementationOnce(async (...args) => {
      const read = when === 'after' ? await get(...args) : undefined;
      reached();
      await held;
      return read ?? get(...args);
    });
    try {
      const { onA, resumed, later } = await supersededWhileStalled(credential.id, onRead);
      release();
      expect(await onA).toMatchObject({ outcome: 'rotated', rotationId: resumed.rotationId, version: 2 });
      expect(later.version).toBe(3);
      expect(pushedByA).toEqual([]);
      expect(provider.secret).toBe((await b.credentials.get(ctx(), credential.id)).value);
    } finally {
      release();
      unregisterA();
      unregisterB();
      jest.restoreAllMocks();
    }
  });

  // The same for a resumed rotation (its first push failed): a stalls on its read of the pending staging value, its
  // lock session ends, and b resumes that rotation and completes it (deleting the staging value).
  it('a resumed rotation whose lock session ended before its staging read, completed meanwhile by b: it answers that rotation, abandons nothing and starts no other', async () => {
    const connectionId = 'lost-lock-resumed';
    const { credential } = await a.service.create(ctx(), { integrationId: 'slow-provider', connectionId });
    const provider = { secret: '' };
    const pushedByA: string[] = [];
    const unregisterA = a.updaters.register('slow-provider', {
      update: async ({ newSecret, rotationId }) => {
        pushedByA.push(rotationId);
        if (pushedByA.length === 1) throw new Error('provider answered 503');
        provider.secret = newSecret;
      },
    });
    const unregisterB = b.updaters.register('slow-provider', { update: async ({ newSecret }) => void (provider.secret = newSecret) });
    let release = () => undefined as void;
    const held = new Promise<void>((r) => (release = r));
    let reached = () => undefined as void;
    const onRead = new Promise<void>((r) => (reached = r));
    try {
      expect(await rejection(a.service.rotate(ctx(), credential.id))).toMatchObject({ codeName: 'WEBHOOK_UPDATE_FAILED' });
      const [pending] = (await a.versionRows(credential.id)).filter((r) => r.state === WebhookSecretState.PENDING);
      const get = a.credentials.get.bind(a.credentials);
      jest.spyOn(a.credentials, 'get').mockImplementation(async (c, id, options) => {
        if (id === pending.stagingCredentialId) {
          reached();
          await held;
        }
        return get(c, id, options);
      });
      const onA = a.service.rotate(ctx(), credential.id);
      await onRead;
      await endLockSession(credential.id);
      const resumed = await b.service.rotate(ctx(), credential.id);
      expect(resumed).toMatchObject({ outcome: 'rotated', rotationId: pending.id, version: 2 });
      release();
      expect(await onA).toMatchObject({ outcome: 'rotated', rotationId: pending.id, version: 2 });
      expect(pushedByA).toEqual([pending.id]); // its failed first push only
      expect((await b.credentials.getMetadata(ctx(), credential.id)).version).toBe(2);
      expect(provider.secret).toBe((await b.credentials.get(ctx(), credential.id)).value);
      const rows = (await a.ds.getRepository(AuditLogEntry).find()).filter((r) => r.resource.includes(credential.id) && r.action.startsWith('webhook_secret.'));
      expect(rows.filter((r) => r.errorCode === 'STAGING_CREDENTIAL_MISSING')).toEqual([]);
    } finally {
      release();
      unregisterA();
      unregisterB();
      jest.restoreAllMocks();
    }
  });

  it('one stage per credential across replicas: the concurrent loser answers ALREADY_STAGED with the winner\'s rotation', async () => {
    for (let round = 0; round < 3; round++) {
      // `manual` has no updater: an operator stages by hand, on whichever replica the balancer picks.
      const { credential } = await a.service.create(ctx(), { integrationId: 'manual', connectionId: `staged-${round}` });
      const answers = await Promise.allSettled([a.rotator.stage(ctx(), credential.id), b.rotator.stage(ctx(), credential.id)]);
      const staged = answers.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      const refused = answers.flatMap((r) => (r.status === 'rejected' ? [r.reason as { codeName?: string; rotationId?: string }] : []));
      expect(staged).toHaveLength(1);
      expect(refused.map((e) => [e.codeName, e.rotationId])).toEqual([['WEBHOOK_SECRET_ALREADY_STAGED', staged[0].rotationId]]);
      expect((await b.versionRows(credential.id)).filter((r) => r.state === WebhookSecretState.PENDING).map((r) => r.id)).toEqual([staged[0].rotationId]);
    }
  });
});

describe('webhook-secret-rotation job whose lock session ends mid-run (two app instances on one PostgreSQL)', () => {
  const h = harness('postgres');
  const ctx = (): OperationContext => ({ tenantId: h.tenantId, actor: { id: 'user:ops' } });

  /**
   * a's run loses its job lock while it pushes its first due secret; b takes the lock at once and runs the job. a
   * finishes that rotation (under the credential's own lock) and starts no other: its run fails LOCK_LOST, and
   * every secret ends rotated once.
   */
  it('stops before its next secret; what it rotated stays, the replica that took the lock rotates the rest', async () => {
    const a = await h.start();
    const b = await h.start();
    const t0 = h.clock.now();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await a.service.create(ctx(), { integrationId: 'slow-provider', connectionId: `due-${i}` })).credential.id);
      h.clock.advance(1000);
    }
    h.clock.set(new Date(t0.getTime() + 181 * DAY));
    let release = () => undefined as void;
    const held = new Promise<void>((r) => (release = r));
    let reached = () => undefined as void;
    const onProvider = new Promise<void>((r) => (reached = r));
    const pushedByA: string[] = [];
    const pushedByB: string[] = [];
    const unregisterA = a.updaters.register('slow-provider', {
      update: async ({ credentialId }) => {
        pushedByA.push(credentialId);
        reached();
        await held;
      },
    });
    const unregisterB = b.updaters.register('slow-provider', { update: async ({ credentialId }) => void pushedByB.push(credentialId) });
    const attempts = jest.spyOn(a.rotator, 'rotate');
    try {
      const stopped = a.job.runOnce().catch((e: unknown) => e);
      await onProvider;
      await endLockSessionOfKey(a.ds, LOCK_KEYS.rotationWebhookSecrets);
      // a still holds its first secret's rotation lock: b leaves that one (failed, next run) and rotates the others.
      expect(await b.job.runOnce()).toMatchObject({ acquired: true, rotated: 2 });
      release();
      expect(await stopped).toMatchObject({ codeName: 'LOCK_LOST' });
      expect(attempts).toHaveBeenCalledTimes(1);
      expect(pushedByA).toHaveLength(1);
      expect([...pushedByA, ...pushedByB].sort()).toEqual([...ids].sort());
      for (const id of ids) expect((await b.credentials.getMetadata(ctx(), id)).version).toBe(2);
      // The next run finds nothing left to do.
      expect(await b.job.runOnce()).toMatchObject({ acquired: true, rotated: 0, resumed: 0, failed: 0 });
    } finally {
      release();
      unregisterA();
      unregisterB();
      attempts.mockRestore();
    }
  });
});
