import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, ArrayMinSize, IsArray, IsEnum, IsIn, IsOptional, IsString, IsUUID, Matches, MaxLength, MinLength, ValidateIf } from 'class-validator';
import { CredentialStatus, CredentialType, IDENTIFIER_PATTERN, MAX_TAGS, NEW_IDENTIFIER_PATTERN, ValueStoreKind } from '@app/credentials';
import { REVOKE_SEVERITIES, type RevokeSeverity } from '@app/rotation';
import { ID_MESSAGE } from '../http/connection-params.dto';
import { BodyInt, IsDateTime, IsJsonObject, LowerCaseUuid, QueryBoolean, QueryInt } from '../http/strict-input';

/** A new id (store): also not made only of dots; routes naming an existing connection keep IDENTIFIER_PATTERN, so an older such row can still be deleted. */
const NEW_ID_MESSAGE = `${ID_MESSAGE}, not made only of dots ("." and ".." are path segments that URLs resolve away)`;
/** Key Vault's limit is 25 KB; the lib checks bytes exactly, this only stops absurd bodies early. */
const MAX_VALUE_CHARS = 25_600;
/** Tags as the lib takes them: at most MAX_TAGS, keys per TAG_KEY_PATTERN, values of at most 512 characters, one line (no control character). */
const TAGS_SCHEMA = { type: 'object', maxProperties: MAX_TAGS, additionalProperties: { type: 'string', maxLength: 512 } } as const;

export class StoreCredentialDto {
  @ApiProperty({ example: 'github', pattern: NEW_IDENTIFIER_PATTERN.source })
  @Matches(NEW_IDENTIFIER_PATTERN, { message: NEW_ID_MESSAGE })
  integrationId: string;

  @ApiProperty({ example: 'org_acme.main', pattern: NEW_IDENTIFIER_PATTERN.source, description: 'Not starting with `rotation-pending.` or `whsec-pending.` (reserved for the internal credentials the host keeps: 400 `VALIDATION`)' })
  @Matches(NEW_IDENTIFIER_PATTERN, { message: NEW_ID_MESSAGE })
  connectionId: string;

  @ApiProperty({ enum: CredentialType })
  @IsEnum(CredentialType, { message: `type must be one of: ${Object.values(CredentialType).join(', ')}` })
  type: CredentialType;

  @ApiProperty({ description: 'The secret value (≤ 25 KB). Never logged, never returned by metadata endpoints.', minLength: 1, maxLength: MAX_VALUE_CHARS })
  @IsString()
  @MinLength(1)
  @MaxLength(MAX_VALUE_CHARS)
  value: string;

  @ApiPropertyOptional({ type: String, format: 'date-time' })
  @IsOptional()
  @IsDateTime()
  expiresAt?: Date;

  @ApiPropertyOptional({ ...TAGS_SCHEMA, description: 'At most 15 tags; never values. A tag value is one line of text: no control character (NUL, tab, line breaks, DEL)' })
  @IsOptional()
  @IsJsonObject()
  tags?: Record<string, string>;

  @ApiPropertyOptional({ enum: ValueStoreKind })
  @IsOptional()
  @IsEnum(ValueStoreKind)
  valueStore?: ValueStoreKind;
}

export class ExpectedVersionDto {
  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'Compare-and-set: the rowVersion you last read' })
  @IsOptional()
  @BodyInt(1)
  expectedVersion?: number;
}

/** `DELETE …?expectedVersion=n` */
export class ExpectedVersionQueryDto {
  @ApiPropertyOptional({ type: 'integer', minimum: 1, description: 'Compare-and-set: the rowVersion you last read' })
  @IsOptional()
  @QueryInt(1, Number.MAX_SAFE_INTEGER)
  expectedVersion?: number;
}

/** `GET …/value?allowExpired=true` */
export class ReadValueQueryDto {
  @ApiPropertyOptional({ type: 'boolean', default: false, description: 'Serve a value past its expiry instead of answering 409 EXPIRED' })
  @IsOptional()
  @QueryBoolean()
  allowExpired?: boolean;
}

export class RotateCredentialDto extends ExpectedVersionDto {
  @ApiProperty({ minLength: 1, maxLength: MAX_VALUE_CHARS })
  @IsString()
  @MinLength(1)
  @MaxLength(MAX_VALUE_CHARS)
  value: string;

  @ApiPropertyOptional({ type: String, format: 'date-time', nullable: true })
  @IsOptional()
  @ValidateIf((_, v) => v !== null)
  @IsDateTime({ nullable: true })
  expiresAt?: Date | null;
}

export class RollbackCredentialDto extends ExpectedVersionDto {
  @ApiProperty({ type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'The version whose value becomes current again (as a new version)' })
  @BodyInt(1)
  version: number;
}

const SETTABLE_STATUSES = [CredentialStatus.ACTIVE, CredentialStatus.EXPIRED, CredentialStatus.NEEDS_REAUTH, CredentialStatus.REVOKED];

export class UpdateCredentialDto extends ExpectedVersionDto {
  @ApiPropertyOptional({ ...TAGS_SCHEMA, description: 'Replaces every tag (at most 15). A tag value is one line of text: no control character (NUL, tab, line breaks, DEL)' })
  @IsOptional()
  @IsJsonObject()
  tags?: Record<string, string>;

  @ApiPropertyOptional({ type: String, format: 'date-time', nullable: true })
  @IsOptional()
  @ValidateIf((_, v) => v !== null)
  @IsDateTime({ nullable: true })
  expiresAt?: Date | null;

  @ApiPropertyOptional({
    enum: SETTABLE_STATUSES,
    description:
      '`revoked` is the emergency revoke of `POST /v1/rotation/revoke` (Key Vault versions disabled, audited as critical, `credential.revoked` event, history): send it alone, with `reason`, `severity` and `expectedVersion` if you like',
  })
  @IsOptional()
  @IsIn(SETTABLE_STATUSES)
  status?: CredentialStatus.ACTIVE | CredentialStatus.EXPIRED | CredentialStatus.NEEDS_REAUTH | CredentialStatus.REVOKED;

  @ApiPropertyOptional({ maxLength: 500, description: 'Only with `status: revoked`: why (audited, in the event and the history). Default: says it came through this route' })
  @IsOptional()
  @IsString()
  @MinLength(1)
  @MaxLength(500)
  reason?: string;

  @ApiPropertyOptional({ enum: REVOKE_SEVERITIES, default: 'critical', description: 'Only with `status: revoked`' })
  @IsOptional()
  @IsIn(REVOKE_SEVERITIES as string[], { message: `severity must be one of: ${REVOKE_SEVERITIES.join(', ')}` })
  severity?: RevokeSeverity;
}

/** `…?includeInternal=true`: the lists of a tenant's credentials show the libs' internal ones too. */
export class IncludeInternalQueryDto {
  @ApiPropertyOptional({
    type: 'boolean',
    default: false,
    description:
      "Also the internal credentials the host keeps among the tenant's (custom_secret of a connection `rotation-pending.…`: a pending rotation value; `whsec-pending.…`: a staged webhook secret). Readable by id either way",
  })
  @IsOptional()
  @QueryBoolean()
  includeInternal?: boolean;
}

export class ListCredentialsQueryDto extends IncludeInternalQueryDto {
  @ApiPropertyOptional()
  @IsOptional()
  @Matches(IDENTIFIER_PATTERN, { message: ID_MESSAGE })
  integrationId?: string;

  @ApiPropertyOptional({ description: 'Exactly this connection. An internal one (`rotation-pending.…`, `whsec-pending.…`) is listed without `includeInternal=true`, unless `includeInternal=false`' })
  @IsOptional()
  @Matches(IDENTIFIER_PATTERN, { message: ID_MESSAGE })
  connectionId?: string;

  @ApiPropertyOptional({ enum: CredentialType })
  @IsOptional()
  @IsEnum(CredentialType)
  type?: CredentialType;

  /** The statuses a live credential can have (as PATCH sets them): deleted ones are never listed (`deleted` matched nothing). */
  @ApiPropertyOptional({ enum: SETTABLE_STATUSES })
  @IsOptional()
  @IsIn(SETTABLE_STATUSES, { message: `status must be one of ${SETTABLE_STATUSES.join(', ')}` })
  status?: CredentialStatus;

  @ApiPropertyOptional({ type: String, format: 'date-time' })
  @IsOptional()
  @IsDateTime()
  expiringBefore?: Date;

  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 500 })
  @IsOptional()
  @QueryInt(1, 500)
  limit?: number;

  @ApiPropertyOptional()
  @IsOptional()
  @IsString()
  @MaxLength(512)
  cursor?: string;
}

export class ExpiringQueryDto extends IncludeInternalQueryDto {
  @ApiPropertyOptional({ type: 'integer', default: 30, minimum: 0, maximum: 3650 })
  @IsOptional()
  @QueryInt(0, 3650)
  days?: number;
}

/** The whole batch is validated first: one malformed id answers 400 and nothing is deleted. */
export class DeleteManyDto {
  @ApiProperty({ type: [String], format: 'uuid', minItems: 1, maxItems: 500, description: 'Credential ids (UUIDs); unknown ones are reported in notFound' })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(500)
  @LowerCaseUuid()
  @IsUUID('4', { each: true, message: 'each of ids must be a credential id (a UUID); nothing was deleted' })
  ids: string[];
}
