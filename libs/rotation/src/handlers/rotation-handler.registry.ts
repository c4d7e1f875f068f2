import { Inject, Injectable } from '@nestjs/common';
import type { CredentialType, CredentialTypeInput } from '@app/credentials';
import { RotationValidationError } from '../errors/rotation.errors';
import { assertType } from '../internal/validation';
import { ROTATION_RESOLVED_OPTIONS } from '../rotation.constants';
import type { ResolvedRotationOptions } from '../rotation.options';
import type { RotationHandler, RotationHandlerRegistration } from './rotation-handler';
import { defaultGenerators, type ValueGenerator } from './value-generators';

/**
 * Who can produce a credential's next value: a `RotationHandler` (most specific first: integration +
 * type, integration, type), else a local value generator of its type, else nobody (a caller must give
 * the value). Handlers come from the module option `handlers` and `register()`.
 */
@Injectable()
export class RotationHandlerRegistry {
  private readonly handlers = new Map<string, RotationHandler>();
  private readonly generators: Partial<Record<CredentialType, ValueGenerator>>;

  constructor(@Inject(ROTATION_RESOLVED_OPTIONS) options: ResolvedRotationOptions) {
    this.generators = defaultGenerators(options.passwordPolicy);
    for (const r of options.handlers) this.register(r);
  }

  /** Registers (or replaces) a handler; returns a function that removes it. */
  register(registration: RotationHandlerRegistration): () => void {
    if (!registration?.handler || typeof registration.handler.mint !== 'function' || !(registration.integrationId || registration.type)) {
      throw new RotationValidationError('a handler registration needs { handler: { mint() } } and an integrationId or a type', 'handler');
    }
    // A type that is none would never match a credential: refused, as the policies refuse it.
    // null is none (an integration-wide handler, as `keyOf` takes it): not refused.
    if (registration.type != null) assertType(registration.type, 'type');
    const key = keyOf(registration.integrationId, registration.type);
    this.handlers.set(key, registration.handler);
    return () => {
      if (this.handlers.get(key) === registration.handler) this.handlers.delete(key);
    };
  }

  /** Replaces the local generator of a type (e.g. a provider-specific API key format). */
  setGenerator(type: CredentialTypeInput, generator: ValueGenerator | undefined): void {
    assertType(type, 'type');
    this.generators[type] = generator;
  }

  /** A type that is none is refused (field `type`): the integration's handler would answer for it. */
  handlerFor(integrationId: string, type: CredentialTypeInput): RotationHandler | undefined {
    assertType(type, 'type');
    return this.handlers.get(keyOf(integrationId, type)) ?? this.handlers.get(keyOf(integrationId)) ?? this.handlers.get(keyOf(undefined, type));
  }

  generatorFor(type: CredentialTypeInput): ValueGenerator | undefined {
    assertType(type, 'type');
    return this.generators[type];
  }
}

function keyOf(integrationId?: string, type?: string): string {
  return JSON.stringify([integrationId ?? null, type ?? null]);
}
