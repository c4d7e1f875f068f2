import { ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, IsArray, IsBoolean, IsOptional, IsString, MaxLength, MinLength, ValidateIf } from 'class-validator';
import { MAX_EMAIL_RECIPIENTS } from '@app/rotation';
import { BodyInt } from '../http/strict-input';

/**
 * A change to the tenant's notification settings. Only the shape is checked here; the rotation lib
 * checks the content (http(s) URL to a public address, `whsec_` secret, e-mail addresses).
 */
export class UpdateNotificationSettingsDto {
  @ApiPropertyOptional({ type: String, nullable: true, maxLength: 2048, description: 'http(s) URL the signed notifications are POSTed to (public addresses only); null removes the webhook' })
  @IsOptional()
  @ValidateIf((_, v) => v !== null)
  @IsString({ message: 'webhookUrl must be a string or null' })
  @MinLength(1, { message: 'webhookUrl must not be empty' })
  @MaxLength(2048, { message: 'webhookUrl must be at most 2048 characters' })
  webhookUrl?: string | null;

  @ApiPropertyOptional({ maxLength: 512, description: 'Set this signing secret (whsec_ + base64 of at least 24 bytes); never returned. Not with generateWebhookSecret.' })
  @IsOptional()
  @IsString({ message: 'webhookSecret must be a string' })
  @MaxLength(512, { message: 'webhookSecret must be at most 512 characters' })
  webhookSecret?: string;

  @ApiPropertyOptional({
    description: 'true: generate a new signing secret, returned once as generatedWebhookSecret. A first webhookUrl without a secret generates one too.',
  })
  @IsOptional()
  @IsBoolean({ message: 'generateWebhookSecret must be true or false' })
  generateWebhookSecret?: boolean;

  @ApiPropertyOptional({ type: [String], maxItems: MAX_EMAIL_RECIPIENTS, description: 'Replaces the list; [] turns e-mail off' })
  @IsOptional()
  @IsArray({ message: 'emailRecipients must be a list of e-mail addresses' })
  @ArrayMaxSize(MAX_EMAIL_RECIPIENTS, { message: `emailRecipients must have at most ${MAX_EMAIL_RECIPIENTS} addresses` })
  @IsString({ each: true, message: 'emailRecipients must be a list of e-mail addresses' })
  @MaxLength(254, { each: true, message: 'an e-mail address is at most 254 characters' })
  emailRecipients?: string[];

  @ApiPropertyOptional({ type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Compare-and-set: the rowVersion you last read (0: never set)' })
  @IsOptional()
  @BodyInt(0)
  expectedRowVersion?: number;
}
