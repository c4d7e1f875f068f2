import type { INestApplication } from '@nestjs/common';
import { CredentialsService, CredentialType } from '@app/credentials';
import { OAuthProviderRegistry } from '@app/oauth-refresh';

/**
 * Registers an OAuth provider for `integrationId` on a running host, its client secret stored as a
 * credential of the `system` tenant (the only form the lib accepts), as test/oauth-http does.
 */
export async function registerOAuthProvider(
  app: INestApplication,
  integrationId: string,
  provider: { issuer: string; clientId: string; clientSecret: string } | { tokenEndpoint: string },
): Promise<void> {
  const clientSecret = 'clientSecret' in provider ? provider.clientSecret : 'unused-client-secret-0123456789';
  const secret = await app
    .get(CredentialsService)
    .store({ tenantId: 'system', actor: { id: 'system:setup' } }, { integrationId: `${integrationId}-client`, connectionId: 'client-secret', type: CredentialType.CUSTOM_SECRET, value: clientSecret });
  app.get(OAuthProviderRegistry).register({
    integrationId,
    ...('issuer' in provider ? { issuer: provider.issuer, clientId: provider.clientId } : { tokenEndpoint: provider.tokenEndpoint, clientId: 'reliability' }),
    clientSecret: { credentialId: secret.id, tenantId: 'system' },
    allowInsecureRequests: true, // test servers speak http on loopback
  });
}
