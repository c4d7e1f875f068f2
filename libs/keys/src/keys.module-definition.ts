import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { KeysModuleOptions } from './keys.options';

export const {
  ConfigurableModuleClass: KeysConfigurableModule,
  MODULE_OPTIONS_TOKEN: KEYS_MODULE_OPTIONS,
  OPTIONS_TYPE: KEYS_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: KEYS_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<KeysModuleOptions>({ moduleName: 'Keys' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();

/** `KeysModule.forRoot()` argument: the options plus `isGlobal`. */
export type KeysModuleForRootOptions = typeof KEYS_OPTIONS_TYPE;
/** `KeysModule.forRootAsync()` argument. */
export type KeysModuleAsyncOptions = typeof KEYS_ASYNC_OPTIONS_TYPE;

/** For `KeysModule.forRootAsync({ useClass | useExisting })`: `create()` returns the options, as for every lib module. */
export interface KeysOptionsFactory {
  create(): KeysModuleOptions | Promise<KeysModuleOptions>;
}
