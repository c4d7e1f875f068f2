import 'reflect-metadata';
import { ConfigurableModuleBuilder, Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { requireOptionsSource } from './options-source';

interface WidgetOptions {
  size?: number;
}

const { ConfigurableModuleClass, MODULE_OPTIONS_TOKEN } = new ConfigurableModuleBuilder<WidgetOptions>({ moduleName: 'Widget' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
requireOptionsSource(ConfigurableModuleClass, 'WidgetModule', (m) => new Error(m));

/** A lib module as the libs build theirs (ConfigurableModuleBuilder). */
@Module({})
class WidgetModule extends ConfigurableModuleClass {}

@Injectable()
class WidgetOptionsFactory {
  create(): WidgetOptions {
    return { size: 3 };
  }
}

@Module({})
class ConfigModule {}

describe('requireOptionsSource', () => {
  it('refuses a forRootAsync with no useFactory, useClass or useExisting when it is called, saying what to pass', () => {
    // TypeScript takes it (every field of the async options is optional); Nest would fail later with
    // "can't resolve dependencies of the WIDGET_MODULE_OPTIONS (?)".
    expect(() => WidgetModule.forRootAsync({ imports: [ConfigModule], inject: [], isGlobal: true })).toThrow(
      'WidgetModule.forRootAsync needs useFactory, useClass or useExisting (what gives the options); got none (imports, inject and isGlobal go beside it)',
    );
  });

  it('leaves forRootAsync as it is with a source, and forRoot', async () => {
    const byFactory = await Test.createTestingModule({ imports: [WidgetModule.forRootAsync({ useFactory: () => ({ size: 1 }) })] }).compile();
    expect(byFactory.get(MODULE_OPTIONS_TOKEN)).toEqual({ size: 1 });
    const byClass = await Test.createTestingModule({ imports: [WidgetModule.forRootAsync({ useClass: WidgetOptionsFactory })] }).compile();
    expect(byClass.get(MODULE_OPTIONS_TOKEN)).toEqual({ size: 3 });
    const sync = await Test.createTestingModule({ imports: [WidgetModule.forRoot({ size: 2 })] }).compile();
    expect(sync.get(MODULE_OPTIONS_TOKEN)).toMatchObject({ size: 2 });
  });
});
