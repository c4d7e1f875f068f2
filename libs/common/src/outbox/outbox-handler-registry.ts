import { Injectable } from '@nestjs/common';
import type { OutboxEvent, OutboxHandler } from './outbox.types';

interface Registration {
  pattern: string;
  handler: OutboxHandler;
}

interface BusMapping {
  pattern: string;
  map: (event: OutboxEvent) => unknown;
}

/**
 * Who receives which outbox events. A pattern is an exact event name, `'*'` (every event) or a
 * prefix ending in `.*` (`'credential.*'` matches `credential.rotated`, not `credential`).
 */
@Injectable()
export class OutboxHandlerRegistry {
  private readonly registrations: Registration[] = [];
  private readonly busMappings: BusMapping[] = [];
  private readonly offBus: string[] = [];

  /** Adds a handler; returns a function that removes it again. */
  register(pattern: string, handler: OutboxHandler): () => void {
    if (typeof pattern !== 'string' || pattern.length === 0) throw new TypeError('An outbox handler pattern must be a non-empty string');
    if (typeof handler !== 'function') throw new TypeError('An outbox handler must be a function');
    const registration = { pattern, handler };
    this.registrations.push(registration);
    return () => {
      const i = this.registrations.indexOf(registration);
      if (i >= 0) this.registrations.splice(i, 1);
    };
  }

  /** The handlers of `name`, in registration order. */
  handlersFor(name: string): OutboxHandler[] {
    return this.registrations.filter((r) => matches(r.pattern, name)).map((r) => r.handler);
  }

  /**
   * What the EventEmitter2 bus receives for events matching `pattern`, instead of the `OutboxEvent`
   * itself: lets a lib move an in-process event onto the outbox without changing what its existing
   * listeners get. The first matching mapping wins; a mapping that throws fails the delivery (retried).
   * Returns a function that removes it again.
   */
  mapBusPayload(pattern: string, map: (event: OutboxEvent) => unknown): () => void {
    if (typeof pattern !== 'string' || pattern.length === 0) throw new TypeError('An outbox bus mapping pattern must be a non-empty string');
    if (typeof map !== 'function') throw new TypeError('An outbox bus mapping must be a function');
    const mapping = { pattern, map };
    this.busMappings.push(mapping);
    return () => {
      const i = this.busMappings.indexOf(mapping);
      if (i >= 0) this.busMappings.splice(i, 1);
    };
  }

  /**
   * Keeps events matching `pattern` off the EventEmitter2 bus: a lib's own work (its handlers still get them), which an
   * app's `onAny` or wildcard listener would otherwise hear. Returns a function that removes it again.
   */
  keepOffBus(pattern: string): () => void {
    if (typeof pattern !== 'string' || pattern.length === 0) throw new TypeError('An outbox bus exclusion pattern must be a non-empty string');
    this.offBus.push(pattern);
    return () => {
      const i = this.offBus.indexOf(pattern);
      if (i >= 0) this.offBus.splice(i, 1);
    };
  }

  /** Whether the bus receives events named `name` (see keepOffBus). */
  isOnBus(name: string): boolean {
    return !this.offBus.some((pattern) => matches(pattern, name));
  }

  /** The payload the bus receives for `event`: its mapping's result, else the event. */
  busPayloadFor(event: OutboxEvent): unknown {
    const mapping = this.busMappings.find((m) => matches(m.pattern, event.name));
    return mapping ? mapping.map(event) : event;
  }
}

function matches(pattern: string, name: string): boolean {
  if (pattern === '*' || pattern === name) return true;
  return pattern.endsWith('.*') && name.startsWith(pattern.slice(0, -1));
}

/**
 * The outbox handlers one provider registers for its module's life, so that it does not keep its own list of removers:
 * `register` them in `onModuleInit` and `unregisterAll()` in `onModuleDestroy`. Both hooks stay on the provider, beside
 * its other start and stop work (a provider that registers nothing, disabled by its options, just does not call it).
 *
 * ```ts
 * private readonly outboxRegistrations = new OutboxHandlerRegistrations();
 * onModuleInit(): void {
 *   this.outboxRegistrations.register(this.handlers, ['credential.deleted', 'credential.revoked'], (event) => this.handle(event));
 * }
 * onModuleDestroy(): void {
 *   this.outboxRegistrations.unregisterAll();
 * }
 * ```
 */
export class OutboxHandlerRegistrations {
  private readonly removers: Array<() => void> = [];

  /** Registers `handler` with `registry` under each pattern, in their order (a pattern given twice, once). */
  register(registry: OutboxHandlerRegistry, patterns: string | Iterable<string>, handler: OutboxHandler): void {
    for (const pattern of new Set(typeof patterns === 'string' ? [patterns] : patterns)) this.removers.push(registry.register(pattern, handler));
  }

  /** Removes every handler registered here; once more, nothing. */
  unregisterAll(): void {
    for (const remove of this.removers.splice(0)) remove();
  }
}
