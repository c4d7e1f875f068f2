import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { applyDecorators } from '@nestjs/common';
import { Transform } from 'class-transformer';
import { ArrayMaxSize, IsArray, IsBoolean, IsIn, IsOptional, IsString, Matches, MaxLength, ValidateBy } from 'class-validator';
import { IsDateTime, IsJsonObject, QueryInt } from '../http/strict-input';

// Accepted spellings are the JOSE/Key Vault ones; the lib decides what a given key allows (and
// refuses RSA1_5 unless enabled) — these lists only turn a typo into a 400 that names the field.
const KEY_TYPES = ['RSA', 'EC'] as const;
const RSA_SIZES = [2048, 3072, 4096] as const;
const CURVES = ['P-256', 'P-384', 'P-521'] as const;
const KEY_OPS = ['sign', 'verify', 'encrypt', 'decrypt', 'wrapKey', 'unwrapKey'] as const;
const SIGNATURE_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'] as const;
const ENCRYPTION_ALGORITHMS = ['RSA-OAEP', 'RSA-OAEP-256', 'RSA1_5'] as const;

/** Version ids are the vault's (32 hex characters in Azure); bounded here, checked by the lib. */
const VERSION = /^[A-Za-z0-9]{1,64}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const oneOf = (values: readonly (string | number)[]) => `$property must be one of: ${values.join(', ')}`;

/**
 * A binary field, documented and taken as base64url (RFC 4648 §5, no padding), decoded to a Buffer
 * before validation. Anything else — standard base64 `+/`, padding, whitespace, a non-string — stays
 * as is and fails here, so the handler only ever gets bytes. `maxBytes` stops absurd bodies; the lib
 * checks exact lengths.
 */
function IsBase64Url(maxBytes: number, description?: string) {
  const message = `$property must be base64url (RFC 4648 §5: A-Z a-z 0-9 - _, no padding) of 1 to ${maxBytes} bytes`;
  return applyDecorators(
    ApiProperty({ type: String, format: 'base64url', description }),
    Transform(({ value }) => (typeof value === 'string' && BASE64URL.test(value) && value.length % 4 !== 1 ? Buffer.from(value, 'base64url') : value)),
    ValidateBy({ name: 'isBase64Url', validator: { validate: (v: unknown) => Buffer.isBuffer(v) && v.length > 0 && v.length <= maxBytes, defaultMessage: () => message } }),
  );
}

const TAGS_DOC = { type: 'object', additionalProperties: { type: 'string' } } as const;

/** What can change on a key version (all optional); creation takes the same. */
export class UpdateKeyDto {
  @ApiPropertyOptional({ description: 'Default true on creation' })
  @IsOptional()
  @IsBoolean()
  enabled?: boolean;

  @ApiPropertyOptional({ ...TAGS_DOC, description: 'At most 15 tags, never secrets; an update replaces every tag. A tag value is one line of text: no control character (NUL, tab, line breaks, ESC, DEL)' })
  @IsOptional()
  @IsJsonObject()
  tags?: Record<string, string>;

  @ApiPropertyOptional({ type: String, format: 'date-time', description: 'Kept in whole seconds, as the vault stores it: a fraction is rounded down (the key expires no later than asked); the answer shows the value stored' })
  @IsOptional()
  @IsDateTime()
  expiresOn?: Date;

  @ApiPropertyOptional({ type: String, format: 'date-time', description: 'Kept in whole seconds, as the vault stores it: a fraction is rounded up (the key is usable no earlier than asked); the answer shows the value stored. Must be before expiresOn once both are rounded' })
  @IsOptional()
  @IsDateTime()
  notBefore?: Date;

  @ApiPropertyOptional({ enum: KEY_OPS, isArray: true, description: 'Each operation once (a repeated one is 400 KEYS_VALIDATION). Default on creation: RSA all six, EC sign and verify' })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(KEY_OPS.length)
  @IsIn(KEY_OPS, { each: true, message: `each of keyOps must be one of: ${KEY_OPS.join(', ')}` })
  keyOps?: (typeof KEY_OPS)[number][];
}

export class CreateKeyDto extends UpdateKeyDto {
  @ApiProperty({ example: 'webhook-signing', description: '1–63 letters, digits and -, starting with a letter or digit; unique in your tenant' })
  @IsString()
  @MaxLength(63)
  name: string;

  @ApiProperty({ enum: KEY_TYPES })
  @IsIn(KEY_TYPES, { message: oneOf(KEY_TYPES) })
  type: (typeof KEY_TYPES)[number];

  @ApiPropertyOptional({ enum: RSA_SIZES, description: 'RSA only; default 2048' })
  @IsOptional()
  @IsIn(RSA_SIZES, { message: oneOf(RSA_SIZES) })
  size?: (typeof RSA_SIZES)[number];

  @ApiPropertyOptional({ enum: CURVES, description: 'EC only; default P-256' })
  @IsOptional()
  @IsIn(CURVES, { message: oneOf(CURVES) })
  curve?: (typeof CURVES)[number];
}

/** `GET /v1/keys?tag=env=prod&tag=team=core&limit=10&cursor=…` */
export class ListKeysQueryDto {
  @ApiPropertyOptional({ type: [String], description: 'name=value; repeat for several (a key must carry all of them)', example: 'env=prod' })
  @IsOptional()
  @Transform(({ value }) => (typeof value === 'string' ? [value] : value))
  @IsArray()
  @ArrayMaxSize(15)
  @Matches(/^[^=]+=[\s\S]*$/, { each: true, message: 'each tag must be name=value' })
  tag?: string[];

  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 25 })
  @IsOptional()
  @QueryInt(1, 25)
  limit?: number;

  @ApiPropertyOptional({ description: 'nextCursor of the previous page' })
  @IsOptional()
  @IsString()
  @MaxLength(4096)
  cursor?: string;
}

export class PageQueryDto {
  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 25 })
  @IsOptional()
  @QueryInt(1, 25)
  limit?: number;

  @ApiPropertyOptional()
  @IsOptional()
  @IsString()
  @MaxLength(4096)
  cursor?: string;
}

/** Every crypto body may pin a version; the latest is used otherwise. */
class KeyVersionDto {
  @ApiPropertyOptional({ description: 'Key version; default the latest' })
  @IsOptional()
  @Matches(VERSION, { message: 'version must be 1–64 letters or digits' })
  version?: string;
}

export class SignDto extends KeyVersionDto {
  @ApiProperty({ enum: SIGNATURE_ALGORITHMS })
  @IsIn(SIGNATURE_ALGORITHMS, { message: oneOf(SIGNATURE_ALGORITHMS) })
  algorithm: (typeof SIGNATURE_ALGORITHMS)[number];

  @IsBase64Url(64, 'SHA-256/384/512 digest of the data (32/48/64 bytes)')
  digest: Buffer;
}

export class VerifyDto extends SignDto {
  @IsBase64Url(1024)
  signature: Buffer;

  @ApiPropertyOptional({ description: 'Verify in the vault instead of locally from the public key' })
  @IsOptional()
  @IsBoolean()
  remote?: boolean;
}

/** RSA encryption and key wrapping share their algorithms. */
class EncryptionAlgorithmDto extends KeyVersionDto {
  @ApiProperty({ enum: ENCRYPTION_ALGORITHMS, description: 'RSA1_5 is refused unless the host enables it' })
  @IsIn(ENCRYPTION_ALGORITHMS, { message: oneOf(ENCRYPTION_ALGORITHMS) })
  algorithm: (typeof ENCRYPTION_ALGORITHMS)[number];
}

export class EncryptDto extends EncryptionAlgorithmDto {
  @IsBase64Url(512, 'At most the key size minus the padding (RSA-OAEP-256, 2048 bits: 190 bytes)')
  plaintext: Buffer;
}

export class DecryptDto extends EncryptionAlgorithmDto {
  @IsBase64Url(512)
  ciphertext: Buffer;
}

export class WrapKeyDto extends EncryptionAlgorithmDto {
  @IsBase64Url(512, 'The key to wrap, e.g. a 32-byte data key')
  key: Buffer;
}

export class UnwrapKeyDto extends EncryptionAlgorithmDto {
  @IsBase64Url(512)
  wrappedKey: Buffer;
}

/** The largest key backup a restore takes: some 130 versions of an RSA-4096 key (about 7.5 KB each). */
export const MAX_KEY_BACKUP_BYTES = 1024 * 1024;
/** Its request body: the backup in base64url, in a JSON object (1 KiB for the rest), over the host's 256 KiB default. */
export const KEY_RESTORE_BODY_LIMIT = Math.ceil((MAX_KEY_BACKUP_BYTES * 4) / 3) + 1024;

export class RestoreKeyDto {
  @IsBase64Url(MAX_KEY_BACKUP_BYTES, 'A backup from POST /v1/keys/{name}/backup of this tenant')
  backup: Buffer;
}
