import { HttpStatus } from '@nestjs/common';
import { CredentialVaultError, ErrorSeverity } from '../errors';

/** Stable error codes of libs/common's scheduled jobs (7xxx). Never renumber. */
export enum ScheduledJobErrorCode {
  /** A job is enabled but cannot be scheduled (no ScheduleModule, a duplicate name, a bad cron). */
  CONFIGURATION = 7001,
}

/** HTTP status of each code, composed by the host; a new code does not compile without one. */
export const SCHEDULED_JOB_ERROR_HTTP_STATUS: Record<ScheduledJobErrorCode, HttpStatus> = {
  [ScheduledJobErrorCode.CONFIGURATION]: HttpStatus.INTERNAL_SERVER_ERROR, // raised at bootstrap, never by a request
};

export class ScheduledJobConfigurationError extends CredentialVaultError {
  readonly code = ScheduledJobErrorCode.CONFIGURATION;
  readonly codeName = 'SCHEDULED_JOB_CONFIGURATION';
  readonly severity = ErrorSeverity.CONFIGURATION;
}
