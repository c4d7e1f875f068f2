import type { OperationContext } from '@app/common';
import { CredentialRevokeIncompleteError, CredentialsService, CredentialStatus } from '@app/credentials';
import type { RevocationService, RevokeResult } from '@app/rotation';
import { CredentialsController } from './credentials.controller';

const ID = '4f1c2a9e-7b3d-4e8f-a1c2-9d8e7f6a5b4c';
const ctx: OperationContext = { tenantId: 'acme', actor: { id: 'api-key:responder' } };

/**
 * PATCH to `status: revoked` when the revoke route's revoke lists the credential in `vaultFailures`. That list says only
 * that its Key Vault versions were not all disabled: a vault failure, or the lib's own REVOKE_INCOMPLETE (writes of it
 * kept committing on every pass), which RevocationService catches alike. The answer must not claim a cause it cannot know.
 * The whole route over HTTP and a real vault: test/rotation-http.e2e-spec.ts.
 */
describe('CredentialsController.update to status revoked', () => {
  it('a credential the revoke left unfinished: 409 REVOKE_INCOMPLETE naming no cause the controller cannot know', async () => {
    const unfinished: RevokeResult = { revoked: [ID], vaultVersionsDisabled: 0, vaultFailures: [ID], gone: [] };
    const revocation = { revoke: async () => unfinished } as unknown as RevocationService;
    const credentials = { getMetadata: async () => ({ id: ID, status: CredentialStatus.REVOKED }) } as unknown as CredentialsService;
    const controller = new CredentialsController(credentials, revocation);

    const error = await controller.update(ctx, ID, { status: CredentialStatus.REVOKED }).then(
      () => undefined,
      (e: unknown) => e,
    );

    expect(error).toBeInstanceOf(CredentialRevokeIncompleteError);
    expect(error).toMatchObject({ code: 2013, credentialId: ID });
    const message = (error as Error).message;
    expect(message).toMatch(/is revoked .*its Key Vault versions could not all be disabled.*Revoke it again to finish/);
    // Not "the vault failed": the same list holds a revoke that gave up because writes kept committing.
    expect(message).not.toMatch(/vault failed|kept committing/);
  });
});
