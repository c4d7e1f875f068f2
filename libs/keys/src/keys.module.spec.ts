import { Module } from '@nestjs/common';
import { Registry } from 'prom-client';
import { AuditService } from '@app/audit';
import { KeyVaultModule, type KeyVaultModuleForRootOptions } from '@app/key-vault';
import { bootstrapError, globalStubs } from '@app/testing';
import { KeysError, KeysErrorCode, KeysModule } from './index';

const vault = (extras: Partial<KeyVaultModuleForRootOptions> = {}) =>
  KeyVaultModule.forRoot({ vaultUrl: 'https://localhost:42443', credential: { type: 'static' }, metrics: { registry: new Registry() }, ...extras });

describe('KeysModule wiring', () => {
  it('fails bootstrap with KEYS_CONFIGURATION naming KeyVaultModule and isGlobal when the host registered it inside a feature module without isGlobal', async () => {
    // The mistake as embedders made it: the vault registered in the feature module of the app's own vault code.
    @Module({ imports: [vault()] })
    class VaultFeatureModule {}
    const err = await bootstrapError([globalStubs(AuditService), VaultFeatureModule, KeysModule.forRoot({})]);
    expect(err).toBeInstanceOf(KeysError);
    expect((err as KeysError).code).toBe(KeysErrorCode.KEYS_CONFIGURATION);
    expect(err.message).toBe(
      'KeysModule needs KeyVaultModule.forRoot({ ..., isGlobal: true }) or KeyVaultModule.forRootAsync({ ..., isGlobal: true }) ' +
        '(the key-vault entry: @app/key-vault in this repo, @credential-vault/nest/key-vault from the package) in the host, once (missing: KeyVaultKeysProvider); ' +
        'KeyVaultModule exports it but is not global: only the module importing it sees it',
    );
  });

  it('fails bootstrap naming AuditModule when the host did not register it', async () => {
    const err = await bootstrapError([vault({ isGlobal: true }), KeysModule.forRoot({})]);
    expect(err).toBeInstanceOf(KeysError);
    expect(err.message).toMatch(/^KeysModule needs AuditModule\.forRoot\(\{ \.\.\., isGlobal: true \}\) or AuditModule\.forRootAsync\(\{ \.\.\., isGlobal: true \}\) \(the audit entry: @app\/audit in this repo, @credential-vault\/nest\/audit from the package\)/);
    expect(err.message).toMatch(/in the host, once \(missing: AuditService\)$/);
  });
});
