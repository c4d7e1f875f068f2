import { Logger } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { ManualClock, type OperationContext } from '@app/common';
import { resolveCredentialsOptions } from '../credentials.options';
import type { CredentialEntity } from '../entities/credential.entity';
import type { CredentialsPersistence } from '../persistence/credentials-persistence';
import { CredentialEventPublisher } from './credential-event-publisher';
import { CredentialEvents } from './credential-events';

/** A vault secret name as the lib makes them (it carries the tenant). */
const SECRET_NAME = 'cv-tenant-31f0c2aa-github-prod-api-key-g2';

/** A listener's typed failure, its cause the vault's text naming the secret. */
class ListenerVaultError extends Error {
  readonly code = 'LISTENER_VAULT_DOWN';
  constructor() {
    super(`mirror of ${SECRET_NAME} failed`, { cause: new Error(`(Forbidden) secret ${SECRET_NAME}`) });
    this.name = 'ListenerVaultError';
  }
}

describe('CredentialEventPublisher: credential.read', () => {
  const ctx: OperationContext = { tenantId: 'tenant-31f0c2aa', actor: { id: 'user:1' } };
  const row = { id: 'cred-1', tenantId: ctx.tenantId, integrationId: 'github', connectionId: 'prod', type: 'api_key', currentVersion: 2, rowVersion: 3 } as CredentialEntity;
  const persistence = { outbox: {}, handlers: {} } as unknown as CredentialsPersistence;

  afterEach(() => jest.restoreAllMocks());

  it("a failing listener does not fail the read; its log line names the error's class and code, not its message", () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const events = new EventEmitter2();
    const seen: unknown[] = [];
    events.on(CredentialEvents.READ, (e: unknown) => {
      seen.push(e);
      throw new ListenerVaultError();
    });
    const publisher = new CredentialEventPublisher(persistence, new ManualClock(new Date('2026-01-01T00:00:00Z')), resolveCredentialsOptions({}), events);

    expect(() => publisher.read(ctx, row)).not.toThrow();

    expect(seen).toEqual([expect.objectContaining({ name: CredentialEvents.READ, credentialId: 'cred-1', version: 2 })]);
    expect(warn).toHaveBeenCalledTimes(1);
    const line = String(warn.mock.calls[0][0]);
    expect(line).toBe('a listener of credential.read failed for credential cred-1: ListenerVaultError(LISTENER_VAULT_DOWN)');
    expect(line).not.toContain(SECRET_NAME);
  });
});
