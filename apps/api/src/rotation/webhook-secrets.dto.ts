import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsEnum, IsOptional, IsUUID, Matches } from 'class-validator';
import { IDENTIFIER_PATTERN, ValueStoreKind } from '@app/credentials';
import { LowerCaseUuid } from '../http/strict-input';

const ID_MESSAGE = '$property must be 1–128 characters of letters, digits and . _ : @ -';

/** The connection whose webhook secret a route acts on (path). */
export class WebhookConnectionParamsDto {
  @ApiProperty({ description: 'The integration (e.g. stripe)' })
  @Matches(IDENTIFIER_PATTERN, { message: ID_MESSAGE })
  integrationId: string;

  @ApiProperty({ description: 'The connection of that integration' })
  @Matches(IDENTIFIER_PATTERN, { message: ID_MESSAGE })
  connectionId: string;
}

export class CreateWebhookSecretDto {
  @ApiPropertyOptional({ enum: ValueStoreKind, description: "Where the value is kept (default: the integration's or the host's default)" })
  @IsOptional()
  @IsEnum(ValueStoreKind, { message: `valueStore must be one of: ${Object.values(ValueStoreKind).join(', ')}` })
  valueStore?: ValueStoreKind;
}

/** Which staged secret an activate or discard means (optional: the one staged). */
export class StagedWebhookSecretDto {
  @ApiPropertyOptional({ format: 'uuid', description: 'The `rotationId` answered by …/secret/stage; given, the call fails (409) if another secret is staged now' })
  @IsOptional()
  @LowerCaseUuid()
  @IsUUID('all', { message: 'rotationId must be a UUID' })
  rotationId?: string;
}
