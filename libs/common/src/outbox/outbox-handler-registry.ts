import { Injectable } from '@nestjs/common';
import type { OutboxHandler } from './outbox.types';

interface Registration {
  pattern: string;
  handler: OutboxHandler;
}

/**
 * Who receives which outbox events. A pattern is an exact event name, `'*'` (every event) or a
 * prefix ending in `.*` (`'credential.*'` matches `credential.rotated`, not `credential`).
 */
@Injectable()
export class OutboxHandlerRegistry {
  private readonly registrations: Registration[] = [];

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
}

function matches(pattern: string, name: string): boolean {
  if (pattern === '*' || pattern === name) return true;
  return pattern.endsWith('.*') && name.startsWith(pattern.slice(0, -1));
}
