import { KeyVaultHttpError } from './errors';
import { OPERATION_NAMES, OperationName } from './http/router';

/**
 * A permission the caller lacks, for tests of what a client does with Azure's 403: `rbac` (a vault using
 * Azure RBAC: 403 `Forbidden`, inner `ForbiddenByRbac`) or `accessPolicy` (a vault using access policies:
 * inner `ForbiddenByPolicy`). See KeyVaultEmulator.deny.
 */
export interface DenySpec {
  /** The operations refused (names as in stats, e.g. 'getSecret', 'sign'). */
  operations: string[];
  /** The vault's permission model. @default 'rbac' */
  model?: 'rbac' | 'accessPolicy';
  /** Only for these object names (case-insensitive), as a role assigned on single secrets; default every name. */
  names?: string[];
}

/** RBAC data action and access-policy permission of each operation (the Key Vault built-in role definitions). */
const PERMISSION: Record<OperationName, { action: string; permission: string }> = {
  setSecret: { action: 'secrets/setSecret/action', permission: 'set' },
  getSecret: { action: 'secrets/getSecret/action', permission: 'get' },
  updateSecret: { action: 'secrets/setSecret/action', permission: 'set' },
  listSecrets: { action: 'secrets/readMetadata/action', permission: 'list' },
  listSecretVersions: { action: 'secrets/readMetadata/action', permission: 'list' },
  deleteSecret: { action: 'secrets/delete', permission: 'delete' },
  getDeletedSecret: { action: 'secrets/readMetadata/action', permission: 'list' },
  listDeletedSecrets: { action: 'secrets/readMetadata/action', permission: 'list' },
  recoverDeletedSecret: { action: 'secrets/recover/action', permission: 'recover' },
  purgeDeletedSecret: { action: 'secrets/purge/action', permission: 'purge' },
  backupSecret: { action: 'secrets/backup/action', permission: 'backup' },
  restoreSecret: { action: 'secrets/restore/action', permission: 'restore' },
  createKey: { action: 'keys/create/action', permission: 'create' },
  getKey: { action: 'keys/read', permission: 'get' },
  updateKey: { action: 'keys/update/action', permission: 'update' },
  listKeys: { action: 'keys/read', permission: 'list' },
  listKeyVersions: { action: 'keys/read', permission: 'list' },
  deleteKey: { action: 'keys/delete', permission: 'delete' },
  getDeletedKey: { action: 'keys/read', permission: 'list' },
  listDeletedKeys: { action: 'keys/read', permission: 'list' },
  recoverDeletedKey: { action: 'keys/recover/action', permission: 'recover' },
  purgeDeletedKey: { action: 'keys/purge/action', permission: 'purge' },
  backupKey: { action: 'keys/backup/action', permission: 'backup' },
  restoreKey: { action: 'keys/restore/action', permission: 'restore' },
  rotateKey: { action: 'keys/rotate/action', permission: 'rotate' },
  getKeyRotationPolicy: { action: 'keyrotationpolicies/read', permission: 'getrotationpolicy' },
  updateKeyRotationPolicy: { action: 'keyrotationpolicies/write', permission: 'setrotationpolicy' },
  sign: { action: 'keys/sign/action', permission: 'sign' },
  verify: { action: 'keys/verify/action', permission: 'verify' },
  encrypt: { action: 'keys/encrypt/action', permission: 'encrypt' },
  decrypt: { action: 'keys/decrypt/action', permission: 'decrypt' },
  wrapKey: { action: 'keys/wrap/action', permission: 'wrapKey' },
  unwrapKey: { action: 'keys/unwrap/action', permission: 'unwrapKey' },
};

/** Validates a DenySpec (from code or the admin endpoint); throws a TypeError saying what to fix. */
export function validateDenySpec(raw: unknown): DenySpec {
  if (!raw || typeof raw !== 'object') throw new TypeError('A deny spec must be an object');
  const s = raw as Record<string, unknown>;
  if (!Array.isArray(s.operations) || s.operations.length === 0 || s.operations.some((o) => !(OPERATION_NAMES as readonly unknown[]).includes(o))) {
    throw new TypeError(`deny.operations must be a non-empty array of operation names (${OPERATION_NAMES.join(', ')})`);
  }
  if (s.model !== undefined && s.model !== 'rbac' && s.model !== 'accessPolicy') throw new TypeError("deny.model must be 'rbac' or 'accessPolicy'");
  if (s.names !== undefined && (!Array.isArray(s.names) || s.names.some((n) => typeof n !== 'string'))) throw new TypeError('deny.names must be an array of object names');
  return { operations: [...(s.operations as string[])], model: (s.model as DenySpec['model']) ?? 'rbac', names: (s.names as string[] | undefined)?.map((n) => n.toLowerCase()) };
}

/** The permissions the caller lacks; `check` answers Azure's 403 for a denied operation. */
export class AccessDenials {
  private specs: DenySpec[] = [];

  constructor(private readonly ctx: { tenantId: string; vaultName: string }) {}

  add(spec: DenySpec): void {
    this.specs.push(validateDenySpec(spec));
  }

  clear(): void {
    this.specs = [];
  }

  get active(): number {
    return this.specs.length;
  }

  /** Azure's 403 when the operation (on that object name, if any) is denied, else undefined. */
  check(operation: string, name: string | undefined): KeyVaultHttpError | undefined {
    const hit = this.specs.find((s) => s.operations.includes(operation) && (!s.names || (name !== undefined && s.names.includes(name.toLowerCase()))));
    if (!hit) return undefined;
    const { action, permission } = PERMISSION[operation as OperationName];
    const { tenantId, vaultName } = this.ctx;
    const caller = `appid=${EMULATOR_CALLER};oid=${EMULATOR_CALLER};iss=https://sts.windows.net/${tenantId}/`;
    if (hit.model === 'accessPolicy') {
      const kind = action.startsWith('secrets/') ? 'secrets' : 'keys';
      return new KeyVaultHttpError(
        403,
        'Forbidden',
        `The user, group or application '${caller}' does not have ${kind} ${permission} permission on key vault '${vaultName};location=local'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287`,
        'ForbiddenByPolicy',
      );
    }
    // As Azure's, the message names the resource, so it quotes the object's name.
    const collection = action.startsWith('keyrotationpolicies/') ? 'keys' : action.split('/')[0];
    const resource = `/subscriptions/${EMULATOR_CALLER}/resourcegroups/emulator/providers/microsoft.keyvault/vaults/${vaultName}${name ? `/${collection}/${name}` : ''}`;
    return new KeyVaultHttpError(
      403,
      'Forbidden',
      [
        'Caller is not authorized to perform action on resource.',
        'If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.',
        `Caller: ${caller}`,
        `Action: 'Microsoft.KeyVault/vaults/${action}'`,
        `Resource: '${resource}'`,
        'Assignment: (not found)',
        'DenyAssignmentId: null',
        "DecisionReason: 'DeniedWithNoValidRBAC' ",
        `Vault: ${vaultName};location=local`,
        '',
      ].join('\r\n'),
      'ForbiddenByRbac',
    );
  }
}

/** The fixed object id the emulator names as the caller (its tokens carry no identity it checks). */
const EMULATOR_CALLER = '00000000-0000-4000-8000-0000000ca11e';
