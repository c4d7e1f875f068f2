/** Operation names as reported in stats and matched by FaultSpec.operations. */
export type OperationName =
  | 'setSecret'
  | 'getSecret'
  | 'updateSecret'
  | 'listSecrets'
  | 'listSecretVersions'
  | 'deleteSecret'
  | 'getDeletedSecret'
  | 'listDeletedSecrets'
  | 'recoverDeletedSecret'
  | 'purgeDeletedSecret'
  | 'backupSecret'
  | 'restoreSecret'
  | KeyOperationName;

export type SecretOperationName = Exclude<OperationName, KeyOperationName>;

/** The operations answering a page of items and a `nextLink`. */
export const LIST_OPERATIONS = ['listSecrets', 'listSecretVersions', 'listDeletedSecrets', 'listKeys', 'listKeyVersions', 'listDeletedKeys'] as const satisfies readonly OperationName[];

/** Keys operations (stats names and FaultSpec.operations). */
export type KeyOperationName = (typeof KEY_OPERATION_NAMES)[number];

export const KEY_OPERATION_NAMES = [
  'createKey',
  'getKey',
  'updateKey',
  'listKeys',
  'listKeyVersions',
  'deleteKey',
  'getDeletedKey',
  'listDeletedKeys',
  'recoverDeletedKey',
  'purgeDeletedKey',
  'backupKey',
  'restoreKey',
  'rotateKey',
  'getKeyRotationPolicy',
  'updateKeyRotationPolicy',
  'sign',
  'verify',
  'encrypt',
  'decrypt',
  'wrapKey',
  'unwrapKey',
] as const;

export function isKeyOperation(operation: OperationName): operation is KeyOperationName {
  return (KEY_OPERATION_NAMES as readonly string[]).includes(operation);
}

/** The crypto operations under `/keys/{name}/{version}/<path>`. */
const CRYPTO_PATHS: Record<string, KeyOperationName> = {
  sign: 'sign',
  verify: 'verify',
  encrypt: 'encrypt',
  decrypt: 'decrypt',
  wrapkey: 'wrapKey',
  unwrapkey: 'unwrapKey',
};

export const OPERATION_NAMES: readonly OperationName[] = [
  'setSecret',
  'getSecret',
  'updateSecret',
  'listSecrets',
  'listSecretVersions',
  'deleteSecret',
  'getDeletedSecret',
  'listDeletedSecrets',
  'recoverDeletedSecret',
  'purgeDeletedSecret',
  'backupSecret',
  'restoreSecret',
  ...KEY_OPERATION_NAMES,
];

export type Route =
  | { kind: 'op'; operation: OperationName; name?: string; version?: string }
  | { kind: 'methodNotAllowed'; operation: 'unknown' }
  | { kind: 'notFound'; operation: 'unknown' };

const NOT_FOUND: Route = { kind: 'notFound', operation: 'unknown' };
const BAD_METHOD: Route = { kind: 'methodNotAllowed', operation: 'unknown' };

function segmentsOf(pathname: string): string[] | undefined {
  try {
    return pathname.split('/').slice(1).map(decodeURIComponent);
  } catch {
    return undefined;
  }
}

const op = (operation: OperationName, n?: string, version?: string): Route => ({ kind: 'op', operation, name: n, version });

/**
 * Maps a method and path to an operation, following the REST API. Secrets: `/secrets`,
 * `/secrets/restore`, `/secrets/{name}[/]`, `/secrets/{name}/versions`, `/secrets/{name}/backup`,
 * `/secrets/{name}/{version}`, `/deletedsecrets[/{name}[/recover]]`; keys: see matchKeyRoute.
 */
export function matchRoute(method: string, pathname: string): Route {
  const seg = segmentsOf(pathname);
  if (!seg || seg.length === 0) return NOT_FOUND;
  if (seg[0] === 'keys' || seg[0] === 'deletedkeys') return matchKeyRoute(method, seg);
  const [root, name, third, ...rest] = seg;
  if (rest.length > 0 && !(rest.length === 1 && rest[0] === '')) return NOT_FOUND;

  if (root === 'secrets') {
    if (name === undefined || name === '') {
      if (third !== undefined) return NOT_FOUND;
      return method === 'GET' ? op('listSecrets') : BAD_METHOD;
    }
    if (name === 'restore' && third === undefined && method === 'POST') return op('restoreSecret');
    if (third === undefined) {
      switch (method) {
        case 'PUT':
          return op('setSecret', name);
        case 'GET':
          return op('getSecret', name);
        case 'DELETE':
          return op('deleteSecret', name);
        case 'PATCH':
          return op('updateSecret', name);
        default:
          return BAD_METHOD;
      }
    }
    if (third === 'versions' && method === 'GET') return op('listSecretVersions', name);
    if (third === 'backup' && method === 'POST') return op('backupSecret', name);
    if (method === 'GET') return op('getSecret', name, third);
    if (method === 'PATCH') return op('updateSecret', name, third);
    if (third === '' && method === 'PUT') return op('setSecret', name);
    return BAD_METHOD;
  }
  if (root === 'deletedsecrets') {
    return matchDeleted(method, name, third, ['listDeletedSecrets', 'getDeletedSecret', 'purgeDeletedSecret', 'recoverDeletedSecret']);
  }
  return NOT_FOUND;
}

/**
 * Keys: `/keys`, `/keys/restore`, `/keys/{name}[/]`, `/keys/{name}/create|rotate|backup|versions`,
 * `/keys/{name}/{version}`, `/keys/{name}/{version}/sign|verify|encrypt|decrypt|wrapkey|unwrapkey`
 * (an empty version means the current one), `/deletedkeys[/{name}[/recover]]`.
 */
function matchKeyRoute(method: string, seg: string[]): Route {
  const [root, name, third, fourth, ...rest] = seg;
  if (rest.length > 0) return NOT_FOUND;
  if (root === 'deletedkeys') {
    if (fourth !== undefined && fourth !== '') return NOT_FOUND;
    return matchDeleted(method, name, third, ['listDeletedKeys', 'getDeletedKey', 'purgeDeletedKey', 'recoverDeletedKey']);
  }
  if (name === undefined || name === '') {
    if (third !== undefined) return NOT_FOUND;
    return method === 'GET' ? op('listKeys') : BAD_METHOD;
  }
  if (fourth !== undefined) {
    const crypto = CRYPTO_PATHS[fourth];
    if (!crypto) return NOT_FOUND;
    return method === 'POST' ? op(crypto, name, third) : BAD_METHOD;
  }
  if (name === 'restore' && third === undefined && method === 'POST') return op('restoreKey');
  if (third === undefined || third === '') {
    if (method === 'GET') return op('getKey', name, third);
    if (method === 'PATCH') return op('updateKey', name, third);
    if (method === 'DELETE' && third === undefined) return op('deleteKey', name);
    return BAD_METHOD;
  }
  const action: Record<string, [string, OperationName]> = {
    create: ['POST', 'createKey'],
    rotate: ['POST', 'rotateKey'],
    backup: ['POST', 'backupKey'],
    versions: ['GET', 'listKeyVersions'],
  };
  const hit = action[third];
  if (hit && method === hit[0]) return op(hit[1], name);
  if (third === 'rotationpolicy') {
    if (method === 'GET') return op('getKeyRotationPolicy', name);
    return method === 'PUT' ? op('updateKeyRotationPolicy', name) : BAD_METHOD;
  }
  if (method === 'GET') return op('getKey', name, third);
  if (method === 'PATCH') return op('updateKey', name, third);
  return BAD_METHOD;
}

/** `/deleted<kind>[/{name}[/recover]]`: list, get, purge, recover (ops in that order). */
function matchDeleted(method: string, name: string | undefined, third: string | undefined, ops: [OperationName, OperationName, OperationName, OperationName]): Route {
  const [list, get, purge, recover] = ops;
  if (name === undefined || name === '') {
    if (third !== undefined) return NOT_FOUND;
    return method === 'GET' ? op(list) : BAD_METHOD;
  }
  if (third === undefined || third === '') {
    if (method === 'GET') return op(get, name);
    if (method === 'DELETE') return op(purge, name);
    return BAD_METHOD;
  }
  if (third === 'recover') return method === 'POST' ? op(recover, name) : BAD_METHOD;
  return NOT_FOUND;
}
