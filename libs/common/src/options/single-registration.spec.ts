import 'reflect-metadata';
import { Injectable, Module, type DynamicModule } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { provideSingleRegistration } from './single-registration';

@Injectable()
class WidgetService {}

/** A lib module as the libs build theirs: non-global unless `isGlobal`, refusing a second registration. */
@Module({})
class WidgetModule {
  static forRoot(options: { isGlobal?: boolean } = {}): DynamicModule {
    return {
      module: WidgetModule,
      global: options.isGlobal ?? false,
      providers: [WidgetService, provideSingleRegistration(Symbol('WIDGET_ONCE'), () => WidgetModule, 'WidgetModule', (m) => new Error(m))],
      exports: [WidgetService],
    };
  }
}

@Module({ imports: [WidgetModule.forRoot()] })
class BillingModule {}

@Module({ imports: [WidgetModule.forRoot()] })
class ReportsModule {}

describe('provideSingleRegistration', () => {
  it('names the modules that register it twice and says how several modules share one registration', async () => {
    const compile = Test.createTestingModule({ imports: [BillingModule, ReportsModule] }).compile();
    // Moved to the host module without isGlobal, the feature modules' providers could not inject its services.
    await expect(compile).rejects.toThrow(
      'WidgetModule is registered 2 times in this application (each registration is an instance of its own; consumers get either), by BillingModule and ReportsModule: register it once, in the host module — with `isGlobal: true` when providers of other modules inject its services',
    );
  });

  it('starts with one registration', async () => {
    const app = await Test.createTestingModule({ imports: [WidgetModule.forRoot({ isGlobal: true })] }).compile();
    expect(app.get(WidgetService)).toBeInstanceOf(WidgetService);
  });
});
