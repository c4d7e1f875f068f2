import { OutboxHandlerRegistrations, OutboxHandlerRegistry } from './outbox-handler-registry';

describe('OutboxHandlerRegistrations', () => {
  it("registers a provider's handler under each pattern in order, and unregisterAll() removes those and nothing else", () => {
    const registry = new OutboxHandlerRegistry();
    const others = () => 'other';
    registry.register('credential.deleted', others);
    const mine = () => 'mine';
    const registrations = new OutboxHandlerRegistrations();
    registrations.register(registry, ['credential.deleted', 'credential.revoked', 'credential.deleted'], mine);
    registrations.register(registry, 'rotation.*', mine);

    expect(registry.handlersFor('credential.deleted')).toEqual([others, mine]); // once, though named twice
    expect(registry.handlersFor('credential.revoked')).toEqual([mine]);
    expect(registry.handlersFor('rotation.completed')).toEqual([mine]);

    registrations.unregisterAll();
    expect(['credential.deleted', 'credential.revoked', 'rotation.completed'].map((n) => registry.handlersFor(n))).toEqual([[others], [], []]);
    // Again (a second destroy): nothing more goes.
    registrations.unregisterAll();
    expect(registry.handlersFor('credential.deleted')).toEqual([others]);
  });
});
