import { errors } from '../errors';
import { isDatedApiVersion } from '../http/api-version';
import { assertTags as assertObjectTags } from '../objects/validation';

export {
  assertObjectName as assertSecretName,
  isValidObjectName as isValidSecretName,
  MAX_BACKUP_VERSIONS,
  parseAttributes,
  VERSION_PATTERN,
} from '../objects/validation';
export type { AttributesInput } from '../objects/validation';

/** Secret values are stored as octets, at most 25 KB (25,600 bytes as UTF-8). */
export const MAX_VALUE_BYTES = 25 * 1024;
export const MAX_CONTENT_TYPE_LENGTH = 255;

/** A secret's tags: at most 15, each name and value at most 512 characters. */
export function assertTags(tags: unknown): asserts tags is Record<string, string> | undefined | null {
  assertObjectTags(tags, 'secret');
}

export function assertValue(value: unknown): asserts value is string {
  if (typeof value !== 'string') throw errors.badParameter('The property "value" is required and must be a string.');
  // Counted in UTF-8 bytes (Azure stores octets); whether the service counts bytes or characters is unverified.
  if (Buffer.byteLength(value, 'utf8') > MAX_VALUE_BYTES) throw errors.secretTooLarge(MAX_VALUE_BYTES);
}

export function assertContentType(contentType: unknown): asserts contentType is string | undefined | null {
  if (contentType === undefined || contentType === null) return;
  if (typeof contentType !== 'string') throw errors.badParameter('The property "contentType" must be a string.');
  if (contentType.length > MAX_CONTENT_TYPE_LENGTH) {
    throw errors.badParameter(`Content type exceeds the maximum length of ${MAX_CONTENT_TYPE_LENGTH} characters.`);
  }
}


/** The formats `outContentType` names (api-version 2025-07-01 on), as the service labels them in its message. */
const CONVERSION_TARGETS: Record<string, string> = { 'application/x-pem-file': 'PEM', 'application/x-pkcs12': 'PFX' };

/**
 * `outContentType` (api-versions 2025-07-01 on) asks the service to convert a certificate-backed secret's value; the
 * emulator has no certificates, and the service answers it for any other secret — whatever its contentType — with
 * 400 BadParameter (recorded answers of the SDK's 2025-07-01 tests). Older api-versions have no such parameter.
 */
export function assertNoConversion(outContentType: string | null, apiVersion: string): void {
  if (outContentType === null || !isDatedApiVersion(apiVersion)) return;
  const target = CONVERSION_TARGETS[outContentType] ?? 'Unsupported';
  throw errors.badParameter(`The 'Unsupported' to '${target}' transformation is not supported. Only PFX to PEM transformation is supported.`);
}
