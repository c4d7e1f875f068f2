import { errors } from '../errors';

export {
  assertObjectName as assertSecretName,
  assertTags,
  isValidObjectName as isValidSecretName,
  MAX_BACKUP_VERSIONS,
  parseAttributes,
  VERSION_PATTERN,
} from '../objects/validation';
export type { AttributesInput } from '../objects/validation';

/** Secret values are stored as octets, at most 25 KB (25,600 bytes as UTF-8). */
export const MAX_VALUE_BYTES = 25 * 1024;
export const MAX_CONTENT_TYPE_LENGTH = 255;

export function assertValue(value: unknown): asserts value is string {
  if (typeof value !== 'string') throw errors.badParameter('The property "value" is required and must be a string.');
  if (Buffer.byteLength(value, 'utf8') > MAX_VALUE_BYTES) {
    throw errors.badParameter(`Secret is beyond the maximum permitted length of ${MAX_VALUE_BYTES} characters.`);
  }
}

export function assertContentType(contentType: unknown): asserts contentType is string | undefined | null {
  if (contentType === undefined || contentType === null) return;
  if (typeof contentType !== 'string') throw errors.badParameter('The property "contentType" must be a string.');
  if (contentType.length > MAX_CONTENT_TYPE_LENGTH) {
    throw errors.badParameter(`Content type exceeds the maximum length of ${MAX_CONTENT_TYPE_LENGTH} characters.`);
  }
}

