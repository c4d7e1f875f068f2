// Type-checked by this app's tsc (`npm test`), never run: each entry exports its module's `<X>OptionsFactory`,
// and a class implementing it (`create()`, the same method for every module) is what `forRootAsync`'s
// `useClass` / `useExisting` take.
import { AuditModule, type AuditModuleOptions, type AuditOptionsFactory } from '@credential-vault/nest/audit';
import { PersistenceModule, type PersistenceModuleOptions, type PersistenceOptionsFactory } from '@credential-vault/nest/common';
import { CredentialsModule, type CredentialsModuleOptions, type CredentialsOptionsFactory } from '@credential-vault/nest/credentials';
import { KeyVaultModule, type KeyVaultModuleOptions, type KeyVaultOptionsFactory } from '@credential-vault/nest/key-vault';
import { KeysModule, type KeysModuleOptions, type KeysOptionsFactory } from '@credential-vault/nest/keys';
import { MigrationModule, type MigrationModuleOptions, type MigrationOptionsFactory } from '@credential-vault/nest/migration';
import { OAuthRefreshModule, type OAuthRefreshModuleOptions, type OAuthRefreshOptionsFactory } from '@credential-vault/nest/oauth-refresh';
import { RotationModule, type RotationModuleOptions, type RotationOptionsFactory } from '@credential-vault/nest/rotation';

class AuditOptions implements AuditOptionsFactory {
  create(): AuditModuleOptions {
    return {};
  }
}
class PersistenceOptions implements PersistenceOptionsFactory {
  create(): PersistenceModuleOptions {
    return {};
  }
}
class CredentialsOptions implements CredentialsOptionsFactory {
  create(): CredentialsModuleOptions {
    return {};
  }
}
class KeyVaultOptions implements KeyVaultOptionsFactory {
  create(): KeyVaultModuleOptions {
    return { vaultUrl: 'https://example.vault.azure.net', credential: { type: 'managed-identity' } };
  }
}
class KeysOptions implements KeysOptionsFactory {
  create(): KeysModuleOptions {
    return {};
  }
}
class MigrationOptions implements MigrationOptionsFactory {
  async create(): Promise<MigrationModuleOptions> {
    return { keys: [] };
  }
}
class OAuthRefreshOptions implements OAuthRefreshOptionsFactory {
  create(): OAuthRefreshModuleOptions {
    return {};
  }
}
class RotationOptions implements RotationOptionsFactory {
  create(): RotationModuleOptions {
    return {};
  }
}

export const withOptionsFactories = [
  AuditModule.forRootAsync({ useClass: AuditOptions, isGlobal: true }),
  PersistenceModule.forRootAsync({ useClass: PersistenceOptions }),
  CredentialsModule.forRootAsync({ useClass: CredentialsOptions, isGlobal: true }),
  KeyVaultModule.forRootAsync({ useClass: KeyVaultOptions, isGlobal: true }),
  KeysModule.forRootAsync({ useExisting: KeysOptions }),
  MigrationModule.forRootAsync({ useClass: MigrationOptions }),
  OAuthRefreshModule.forRootAsync({ useClass: OAuthRefreshOptions }),
  RotationModule.forRootAsync({ useClass: RotationOptions }),
];
