import { Module, type DynamicModule, type Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { CapturingLogger, rejection } from './capture';

/** A global module providing each token as an empty stub: the host modules a wiring test does not care about. */
@Module({})
class GlobalStubs {}

export function globalStubs(...tokens: Array<Type<unknown> | (abstract new (...args: never[]) => unknown)>): DynamicModule {
  return { module: GlobalStubs, global: true, providers: tokens.map((t) => ({ provide: t, useValue: {} })), exports: tokens };
}

/** The error an application made of `imports` fails to start with (its log captured, not printed); fails if it starts. */
export function bootstrapError(imports: Array<Type<unknown> | DynamicModule>): Promise<Error> {
  return rejection(
    Test.createTestingModule({ imports })
      .setLogger(new CapturingLogger())
      .compile()
      .then((app) => app.close()),
  );
}
