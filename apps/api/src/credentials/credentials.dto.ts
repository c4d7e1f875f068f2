import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsDate,
  IsEnum,
  IsIn,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  MinLength,
  ValidateIf,
} from 'class-validator';
import { CredentialStatus, CredentialType, IDENTIFIER_PATTERN, ValueStoreKind } from '@app/credentials';

const ID_MESSAGE = '$property must be 1–128 characters of letters, digits and . _ : @ -';
/** Key Vault's limit is 25 KB; the lib checks bytes exactly, this only stops absurd bodies early. */
const MAX_VALUE_CHARS = 25_600;

export class StoreCredentialDto {
  @ApiProperty({ example: 'github' })
  @Matches(IDENTIFIER_PATTERN, { message: ID_MESSAGE })
  integrationId: string;

  @ApiProperty({ example: 'org_acme.main' })
  @Matches(IDENTIFIER_PATTERN, { message: ID_MESSAGE })
  connectionId: string;

  @ApiProperty({ enum: CredentialType })
  @IsEnum(CredentialType, { message: `type must be one of: ${Object.values(CredentialType).join(', ')}` })
  type: CredentialType;

  @ApiProperty({ description: 'The secret value (≤ 25 KB). Never logged, never returned by metadata endpoints.' })
  @IsString()
  @MinLength(1)
  @MaxLength(MAX_VALUE_CHARS)
  value: string;

  @ApiPropertyOptional({ type: String, format: 'date-time' })
  @IsOptional()
  @Type(() => Date)
  @IsDate({ message: 'expiresAt must be an ISO 8601 date-time' })
  expiresAt?: Date;

  @ApiPropertyOptional({ type: 'object', additionalProperties: { type: 'string' }, description: 'At most 15 tags; never values' })
  @IsOptional()
  @IsObject()
  tags?: Record<string, string>;

  @ApiPropertyOptional({ enum: ValueStoreKind })
  @IsOptional()
  @IsEnum(ValueStoreKind)
  valueStore?: ValueStoreKind;
}

export class ExpectedVersionDto {
  @ApiPropertyOptional({ description: 'Compare-and-set: the rowVersion you last read' })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  expectedVersion?: number;
}

export class RotateCredentialDto extends ExpectedVersionDto {
  @ApiProperty()
  @IsString()
  @MinLength(1)
  @MaxLength(MAX_VALUE_CHARS)
  value: string;

  @ApiPropertyOptional({ type: String, format: 'date-time', nullable: true })
  @IsOptional()
  @ValidateIf((_, v) => v !== null)
  @Type(() => Date)
  @IsDate({ message: 'expiresAt must be an ISO 8601 date-time or null' })
  expiresAt?: Date | null;
}

export class RollbackCredentialDto extends ExpectedVersionDto {
  @ApiProperty({ description: 'The version whose value becomes current again (as a new version)' })
  @IsInt()
  @Min(1)
  version: number;
}

const SETTABLE_STATUSES = [CredentialStatus.ACTIVE, CredentialStatus.EXPIRED, CredentialStatus.NEEDS_REAUTH, CredentialStatus.REVOKED];

export class UpdateCredentialDto extends ExpectedVersionDto {
  @ApiPropertyOptional({ type: 'object', additionalProperties: { type: 'string' } })
  @IsOptional()
  @IsObject()
  tags?: Record<string, string>;

  @ApiPropertyOptional({ type: String, format: 'date-time', nullable: true })
  @IsOptional()
  @ValidateIf((_, v) => v !== null)
  @Type(() => Date)
  @IsDate({ message: 'expiresAt must be an ISO 8601 date-time or null' })
  expiresAt?: Date | null;

  @ApiPropertyOptional({ enum: SETTABLE_STATUSES })
  @IsOptional()
  @IsIn(SETTABLE_STATUSES)
  status?: CredentialStatus.ACTIVE | CredentialStatus.EXPIRED | CredentialStatus.NEEDS_REAUTH | CredentialStatus.REVOKED;
}

export class ListCredentialsQueryDto {
  @ApiPropertyOptional()
  @IsOptional()
  @Matches(IDENTIFIER_PATTERN, { message: ID_MESSAGE })
  integrationId?: string;

  @ApiPropertyOptional()
  @IsOptional()
  @Matches(IDENTIFIER_PATTERN, { message: ID_MESSAGE })
  connectionId?: string;

  @ApiPropertyOptional({ enum: CredentialType })
  @IsOptional()
  @IsEnum(CredentialType)
  type?: CredentialType;

  @ApiPropertyOptional({ enum: CredentialStatus })
  @IsOptional()
  @IsEnum(CredentialStatus)
  status?: CredentialStatus;

  @ApiPropertyOptional({ type: String, format: 'date-time' })
  @IsOptional()
  @Type(() => Date)
  @IsDate()
  expiringBefore?: Date;

  @ApiPropertyOptional({ minimum: 1, maximum: 500 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(500)
  limit?: number;

  @ApiPropertyOptional()
  @IsOptional()
  @IsString()
  @MaxLength(512)
  cursor?: string;
}

export class ExpiringQueryDto {
  @ApiPropertyOptional({ default: 30, minimum: 0, maximum: 3650 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(3650)
  days?: number;
}

export class DeleteManyDto {
  @ApiProperty({ type: [String] })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(500)
  @IsString({ each: true })
  @MaxLength(64, { each: true })
  ids: string[];
}
