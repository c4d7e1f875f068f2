export { KeysModule } from './keys.module';
export { KEYS_MODULE_OPTIONS, type KeysModuleForRootOptions, type KeysModuleAsyncOptions } from './keys.module-definition';
export { resolveKeysOptions, type KeysModuleOptions, type ResolvedKeysOptions } from './keys.options';
export { KeysService } from './keys.service';
export { KeysMetrics, type KeysOperation, type KeysOperationLabels } from './metrics/keys.metrics';
export { KeysErrorCode, KEYS_ERROR_HTTP_STATUS, KeysError, isKeysError } from './errors/keys.errors';
export { verifyDigestLocally, publicKeyOf } from './crypto/local-verify';
export { KEY_NAME_PATTERN } from './keys.types';
export type * from './keys.types';
