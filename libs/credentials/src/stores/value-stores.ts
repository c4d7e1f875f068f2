import { Injectable } from '@nestjs/common';
import { ValueStoreKind } from '../credential-type';
import type { CredentialValueStore } from './credential-value-store';
import { EnvelopeValueStore } from './envelope-value-store';
import { VaultValueStore } from './vault-value-store';

/** The value store of each kind, for the writer (writes, discards) and the reader. */
@Injectable()
export class ValueStores {
  private readonly byKind: Record<ValueStoreKind, CredentialValueStore>;

  constructor(vault: VaultValueStore, envelope: EnvelopeValueStore) {
    this.byKind = { [ValueStoreKind.VAULT]: vault, [ValueStoreKind.ENVELOPE]: envelope };
  }

  of(kind: ValueStoreKind): CredentialValueStore {
    return this.byKind[kind];
  }
}
