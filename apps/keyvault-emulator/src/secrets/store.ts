import { Found as FoundOf, ObjectStoreOptions, UpdateInput, VaultObjectStore } from '../objects/store';
import { SecretVersionRecord } from './model';
import { AttributesInput } from './validation';

export type SecretStoreOptions = ObjectStoreOptions;

export interface SetSecretInput {
  value: string;
  contentType?: string | null;
  tags?: Record<string, string> | null;
  attributes: AttributesInput;
}

export interface UpdateSecretInput extends UpdateInput {
  contentType?: string | null;
}

export type Found = FoundOf<SecretVersionRecord>;

/** The secrets of one vault: a set adds a version holding the value. */
export class SecretStore extends VaultObjectStore<SecretVersionRecord> {
  constructor(options: SecretStoreOptions) {
    super('secret', options);
  }

  set(name: string, input: SetSecretInput): Found {
    const version: SecretVersionRecord = { ...this.baseVersion(input), value: input.value };
    if (input.contentType !== undefined && input.contentType !== null) version.contentType = input.contentType;
    return this.addVersion(name, version);
  }

  override update(name: string, version: string | undefined, input: UpdateSecretInput): Found {
    return super.update(name, version, input, (v) => {
      if (input.contentType === undefined) return;
      if (input.contentType === null) delete v.contentType;
      else v.contentType = input.contentType;
    });
  }
}
