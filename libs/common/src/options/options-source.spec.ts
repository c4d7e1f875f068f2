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

/** A factory written for another convention (Nest's default method name is create()). */
@Injectable()
class LegacyWidgetOptions {
  createWidgetOptions(): WidgetOptions {
    return { size: 4 };
  }
}

@Module({ providers: [LegacyWidgetOptions], exports: [LegacyWidgetOptions] })
class LegacyOptionsModule {}

describe('requireOptionsSource', () => {
  it('refuses a forRootAsync with no useFactory, useClass or useExisting when it is called, saying what to pass', () => {
    // TypeScript takes it (every field of the async options is optional); Nest would fail later with
    // "can't resolve dependencies of the WIDGET_MODULE_OPTIONS (?)".
    expect(() => WidgetModule.forRootAsync({ imports: [ConfigModule], inject: [], isGlobal: true })).toThrow(
      'WidgetModule.forRootAsync needs useFactory, useClass or useExisting (what gives the options); got none (imports, inject and isGlobal go beside it)',
    );
  });

  it('refuses at bootstrap an options factory class without create(), naming it, the module and the interface (useClass, useExisting)', async () => {
    // Nest's own: "TypeError: optionsFactory[self.factoryClassMethodKey] is not a function".
    const message = 'WidgetModule.forRootAsync: the options factory LegacyWidgetOptions (useClass / useExisting) has no create() method: implement WidgetOptionsFactory';
    const byClass = Test.createTestingModule({ imports: [WidgetModule.forRootAsync({ useClass: LegacyWidgetOptions as never })] }).compile();
    await expect(byClass).rejects.toThrow(message);
    const byExisting = Test.createTestingModule({ imports: [WidgetModule.forRootAsync({ imports: [LegacyOptionsModule], useExisting: LegacyWidgetOptions as never })] }).compile();
    await expect(byExisting).rejects.toThrow(message);
  });

  it('leaves forRootAsync as it is with a source, and forRoot', async () => {
    const byFactory = await Test.createTestingModule({ imports: [WidgetModule.forRootAsync({ useFactory: () => ({ size: 1 }) })] }).compile();
    expect(byFactory.get(MODULE_OPTIONS_TOKEN)).toEqual({ size: 1 });
    const byClass = await Test.createTestingModule({ imports: [WidgetModule.forRootAsync({ useClass: WidgetOptionsFactory })] }).compile();
    expect(byClass.get(MODULE_OPTIONS_TOKEN)).toEqual({ size: 3 });
    @Module({ providers: [WidgetOptionsFactory], exports: [WidgetOptionsFactory] })
    class OptionsModule {}
    const byExisting = await Test.createTestingModule({ imports: [WidgetModule.forRootAsync({ imports: [OptionsModule], useExisting: WidgetOptionsFactory })] }).compile();
    expect(byExisting.get(MODULE_OPTIONS_TOKEN)).toEqual({ size: 3 });
    const sync = await Test.createTestingModule({ imports: [WidgetModule.forRoot({ size: 2 })] }).compile();
    expect(sync.get(MODULE_OPTIONS_TOKEN)).toMatchObject({ size: 2 });
  });
});
