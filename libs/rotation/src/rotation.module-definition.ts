import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { RotationModuleOptions } from './rotation.options';

export const {
  ConfigurableModuleClass: RotationConfigurableModule,
  MODULE_OPTIONS_TOKEN: ROTATION_MODULE_OPTIONS,
  OPTIONS_TYPE: ROTATION_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: ROTATION_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<RotationModuleOptions>({ moduleName: 'Rotation' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();

/** For `RotationModule.forRootAsync({ useClass | useExisting })`: `create()` returns the options, as for every lib module. */
export interface RotationOptionsFactory {
  create(): RotationModuleOptions | Promise<RotationModuleOptions>;
}
