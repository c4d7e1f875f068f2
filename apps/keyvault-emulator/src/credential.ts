import type { AccessToken, TokenCredential } from '@azure/core-auth';

/**
 * A static TokenCredential for the emulator. In the default 'any' auth mode every bearer token is
 * accepted; in 'static' mode pass the configured token. Never use this against a real vault.
 */
export function emulatorCredential(token = 'emulator-development-token'): TokenCredential {
  return {
    getToken: async (): Promise<AccessToken> => ({
      token,
      expiresOnTimestamp: Date.now() + 60 * 60 * 1000,
      tokenType: 'Bearer',
    }),
  };
}
