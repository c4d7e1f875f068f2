import { ConfigurableModuleBuilder } from '@nestjs/common';
import { AuditService } from '@app/audit';
import { requireHostModules, requireOptionsSource } from '@app/common';
import { CredentialExpiryScanner, CredentialsService } from '@app/credentials';
import { RotationConfigurationError } from './errors/rotation.errors';
import type { RotationModuleOptions } from './rotation.options';

/** CredentialsModule and AuditModule, checked: a missing or non-global one fails bootstrap with our error, not Nest's. */
export const ROTATION_HOST_MODULES = requireHostModules(
  'RotationModule',
  [
    { module: 'CredentialsModule', entry: 'credentials', tokens: [CredentialsService, CredentialExpiryScanner] },
    { module: 'AuditModule', entry: 'audit', tokens: [AuditService] },
  ],
  (m) => new RotationConfigurationError(m),
);

export const {
  ConfigurableModuleClass: RotationConfigurableModule,
  MODULE_OPTIONS_TOKEN: ROTATION_MODULE_OPTIONS,
  OPTIONS_TYPE: ROTATION_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: ROTATION_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<RotationModuleOptions>({ moduleName: 'Rotation' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false }, (definition, extras) => ROTATION_HOST_MODULES.into({ ...definition, global: extras.isGlobal }))
  .build();
// A forRootAsync naming no source of its options fails when called, naming RotationModule (not Nest's "can't resolve dependencies").
requireOptionsSource(RotationConfigurableModule, 'RotationModule', (m) => new RotationConfigurationError(m));

/** For `RotationModule.forRootAsync({ useClass | useExisting })`: `create()` returns the options, as for every lib module. */
export interface RotationOptionsFactory {
  create(): RotationModuleOptions | Promise<RotationModuleOptions>;
}
