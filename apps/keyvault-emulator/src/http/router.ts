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
  | 'restoreSecret';

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

/**
 * Maps a method and path to a secrets operation, following the REST API:
 * `/secrets`, `/secrets/restore`, `/secrets/{name}[/]`, `/secrets/{name}/versions`,
 * `/secrets/{name}/backup`, `/secrets/{name}/{version}`, `/deletedsecrets[/{name}[/recover]]`.
 */
export function matchRoute(method: string, pathname: string): Route {
  const seg = segmentsOf(pathname);
  if (!seg || seg.length === 0) return NOT_FOUND;
  const [root, name, third, ...rest] = seg;
  if (rest.length > 0 && !(rest.length === 1 && rest[0] === '')) return NOT_FOUND;
  const op = (operation: OperationName, n?: string, version?: string): Route => ({ kind: 'op', operation, name: n, version });

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
    if (name === undefined || name === '') {
      if (third !== undefined) return NOT_FOUND;
      return method === 'GET' ? op('listDeletedSecrets') : BAD_METHOD;
    }
    if (third === undefined || third === '') {
      if (method === 'GET') return op('getDeletedSecret', name);
      if (method === 'DELETE') return op('purgeDeletedSecret', name);
      return BAD_METHOD;
    }
    if (third === 'recover') return method === 'POST' ? op('recoverDeletedSecret', name) : BAD_METHOD;
    return NOT_FOUND;
  }
  return NOT_FOUND;
}
