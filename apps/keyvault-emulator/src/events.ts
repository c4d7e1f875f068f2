/**
 * What Key Vault would publish to Event Grid, kept in a list an operator or a test reads (`events()`,
 * `GET /_emulator/events`): the Event Grid schema's `eventType`, `subject` (the object's name), `eventTime` and `data`
 * (Key Vault's fields: Id, VaultName, ObjectType, ObjectName, Version, NBF, EXP — never a value or key material).
 * In memory only, the newest `MAX_EVENTS`.
 */
export interface VaultEvent {
  eventType: 'Microsoft.KeyVault.KeyNearExpiry';
  subject: string;
  /** ISO 8601, on the vault's clock. */
  eventTime: string;
  data: { Id: string; VaultName: string; ObjectType: 'Key'; ObjectName: string; Version: string; NBF: number | null; EXP: number | null };
}

const MAX_EVENTS = 1000;

export class VaultEvents {
  private list: VaultEvent[] = [];

  record(event: VaultEvent): void {
    this.list.push(event);
    if (this.list.length > MAX_EVENTS) this.list.splice(0, this.list.length - MAX_EVENTS);
  }

  all(): VaultEvent[] {
    return this.list.map((e) => ({ ...e, data: { ...e.data } }));
  }

  clear(): void {
    this.list = [];
  }
}
