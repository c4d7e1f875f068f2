import { ConfigurableModuleBuilder } from '@nestjs/common';
import { requireOptionsSource } from '@app/common';
import { AuditConfigurationError } from './errors/audit.errors';
import type { AuditModuleOptions } from './audit.options';

export const {
  ConfigurableModuleClass: AuditConfigurableModule,
  MODULE_OPTIONS_TOKEN: AUDIT_MODULE_OPTIONS,
  OPTIONS_TYPE: AUDIT_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: AUDIT_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<AuditModuleOptions>({ moduleName: 'Audit' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
// A forRootAsync naming no source of its options fails when called, naming AuditModule (not Nest's "can't resolve dependencies").
requireOptionsSource(AuditConfigurableModule, 'AuditModule', (m) => new AuditConfigurationError(m));

/** Internal token: the options after defaults and validation. */
export const AUDIT_RESOLVED_OPTIONS = Symbol('AUDIT_RESOLVED_OPTIONS');

/** Internal token: the audit lib's Clock (`provideLibClock`: the `clock` option, else the host's, else the system clock). */
export const AUDIT_CLOCK = Symbol('AUDIT_CLOCK');

/** For `AuditModule.forRootAsync({ useClass | useExisting })`: `create()` returns the options, as for every lib module. */
export interface AuditOptionsFactory {
  create(): AuditModuleOptions | Promise<AuditModuleOptions>;
}
