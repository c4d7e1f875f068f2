import { IDENTIFIER_PATTERN, type OutboxEvent } from '@app/common';
import { NOTIFICATION_EVENT_NAMES, NotificationEvents, type NotificationEventName } from './notification.options';
import type { Notification, NotificationFacts } from './notification.types';

// An error's name and code as describeError() writes them: `WebhookUpdaterError(UPDATER_FAILED)`.
const CODE_PATTERN = /^[A-Za-z0-9._:()-]{1,120}$/;

/**
 * The notification of an outbox event, or null when the event is not one we notify or has no tenant.
 * Only allow-listed payload fields are read, each checked for shape, so a value that slipped into a
 * payload by mistake is not forwarded.
 */
export function buildNotification(event: OutboxEvent): Notification | null {
  if (!(NOTIFICATION_EVENT_NAMES as readonly string[]).includes(event.name)) return null;
  const p = event.payload as Record<string, unknown>;
  const tenantId = event.tenantId ?? id(p.tenantId);
  if (!tenantId) return null;
  const facts: NotificationFacts = {
    credentialId: id(p.credentialId),
    integrationId: id(p.integrationId),
    connectionId: id(p.connectionId),
    type: id(p.type),
    expiresAt: date(p.expiresAt),
    thresholdDays: int(p.thresholdDays),
    dueAt: date(p.dueAt),
    version: int(p.version),
    previousVersion: int(p.previousVersion ?? p.fromVersion),
    reason: text(p.reason),
    severity: id(p.severity),
    cause: id(p.cause),
    revokedVersion: int(p.revokedVersion),
    errorCode: code(p.errorCode ?? p.error),
    step: id(p.step),
    attempts: int(p.attempts),
    actorId: id(p.actorId),
  };
  for (const k of Object.keys(facts) as (keyof NotificationFacts)[]) if (facts[k] === undefined) delete facts[k];
  const name = event.name as NotificationEventName;
  const { subject, happened, action } = wording(name, facts);
  const what = describeCredential(facts);
  return {
    eventId: event.id,
    event: name,
    tenantId,
    occurredAt: event.createdAt,
    subject,
    summary: `${happened} ${what}`,
    action,
    facts,
  };
}

/** Plain text of a notification (the e-mail body; also handy for chat channels). */
export function notificationText(n: Notification): string {
  const lines = [n.summary, '', `What to do: ${n.action}`, '', 'Details:'];
  lines.push(`  tenant: ${n.tenantId}`, `  event: ${n.event}`, `  event id: ${n.eventId}`, `  at: ${n.occurredAt.toISOString()}`);
  for (const [k, v] of Object.entries(n.facts)) lines.push(`  ${k}: ${String(v)}`);
  lines.push('', 'This message never contains a credential value.');
  return lines.join('\n');
}

function describeCredential(f: NotificationFacts): string {
  const parts = [
    f.credentialId ? `Credential ${f.credentialId}` : 'A credential',
    f.type ? `(${f.type})` : '',
    f.integrationId ? `of integration "${f.integrationId}"` : '',
    f.connectionId ? `connection "${f.connectionId}"` : '',
  ].filter(Boolean);
  return `${parts.join(' ')}.`;
}

function wording(name: NotificationEventName, f: NotificationFacts): { subject: string; happened: string; action: string } {
  const target = [f.integrationId, f.connectionId].filter(Boolean).join('/') || f.credentialId || 'credential';
  const type = f.type ?? 'credential';
  switch (name) {
    case NotificationEvents.EXPIRING:
      return {
        subject: `${type} for ${target} expires${f.thresholdDays !== undefined ? ` within ${f.thresholdDays} day(s)` : ' soon'}`,
        happened: `Expires ${f.expiresAt ?? 'soon'}:`,
        action: 'Rotate the credential (or reconnect the integration) before it expires; after that, reads of it are refused.',
      };
    case NotificationEvents.EXPIRED:
      return {
        subject: `${type} for ${target} has expired`,
        happened: `Expired${f.expiresAt ? ` at ${f.expiresAt}` : ''}:`,
        action: 'Store a new value (rotate) or reconnect the integration: reads of the expired value are refused.',
      };
    case NotificationEvents.ROTATION_DUE:
      return {
        subject: `${type} for ${target} is due for rotation`,
        happened: `Due for rotation under its rotation policy${f.dueAt ? ` since ${f.dueAt}` : ''}:`,
        action: 'Create a new value at the provider and rotate the credential to it; the previous version stays readable for rollback.',
      };
    case NotificationEvents.ROTATED:
      return {
        subject: `${type} for ${target} was rotated`,
        happened: `Rotated${f.version !== undefined ? ` to version ${f.version}` : ''}:`,
        action: 'Nothing, if you expected it: readers get the new version. If you did not, review the audit log and roll back.',
      };
    case NotificationEvents.ROTATION_FAILED:
      return {
        subject: `Automatic rotation of ${type} for ${target} failed`,
        happened: `Automatic rotation failed${f.errorCode ? ` (${f.errorCode})` : ''}:`,
        action: 'The previous value stays current and the next run retries. If it keeps failing, check the integration’s rotation handler.',
      };
    case NotificationEvents.REVOKED:
      return {
        subject: `${type} for ${target} was revoked${f.cause ? ' again' : ''}${f.severity ? ` (${f.severity})` : ''}`,
        happened: `Revoked${revokedAgain(f)}${f.reason ? ` (reason: ${f.reason})` : ''}:`,
        action: 'Reads of it are refused. Replace it at the provider and store a new one, or un-revoke it if this was a mistake.',
      };
    case NotificationEvents.UNREVOKED:
      return {
        subject: `${type} for ${target} was un-revoked`,
        happened: `Un-revoked${f.reason ? ` (reason: ${f.reason})` : ''}:`,
        action: 'Reads are served again. Check that this was intended.',
      };
    case NotificationEvents.WEBHOOK_SECRET_ROTATED:
      return {
        subject: `Webhook secret for ${target} was rotated`,
        happened: `Webhook secret rotated${f.version !== undefined ? ` to version ${f.version}` : ''}:`,
        action: 'The previous secret stays valid during the overlap window; make sure every receiver verifies with the new one.',
      };
    case NotificationEvents.WEBHOOK_SECRET_ROTATION_DUE:
      return {
        subject: `Webhook secret for ${target} is due for rotation`,
        happened: `Due for rotation under its rotation policy${f.dueAt ? ` since ${f.dueAt}` : ''}; no secret updater is registered for the integration:`,
        action:
          // Embedding apps expose the service their own way; the reference host has routes and a CLI command.
          'Stage a new secret (the app’s WebhookSecretsService.stageConnection(); the reference host: POST /v1/rotation/webhooks/{integration}/{connection}/secret/stage or cli webhook:rotate --stage), install it in the provider’s dashboard, then activate it (activateConnection(); …/secret/activate or --activate). The current secret keeps verifying through the overlap window.',
      };
    case NotificationEvents.WEBHOOK_SECRET_ROTATION_FAILED:
      return {
        subject: `Webhook secret rotation failed for ${target}`,
        happened: `Webhook secret rotation failed${f.step ? ` at step ${f.step}` : ''}${f.errorCode ? ` (${f.errorCode})` : ''}${f.attempts !== undefined ? ` after ${f.attempts} attempt(s)` : ''}:`,
        action:
          f.step === 'repair'
            ? // A push that outlived its lock landed after a later rotation, and pushing the current secret again failed: nothing retries it.
              'The provider may sign with an older secret, which stops verifying when its overlap window ends: check which secret it uses, and rotate again (or install the current one) if it is not the current one.'
            : 'The current secret stays current and the job retries. If it keeps failing, check the integration’s secret updater.',
      };
  }
}

function id(v: unknown): string | undefined {
  return typeof v === 'string' && IDENTIFIER_PATTERN.test(v) ? v : undefined;
}
function code(v: unknown): string | undefined {
  if (typeof v === 'number' && Number.isInteger(v)) return String(v);
  return typeof v === 'string' && CODE_PATTERN.test(v) ? v : undefined;
}
function int(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) ? v : undefined;
}
function date(v: unknown): string | undefined {
  const d = v instanceof Date ? v : typeof v === 'string' || typeof v === 'number' ? new Date(v) : undefined;
  return d && !Number.isNaN(d.getTime()) ? d.toISOString() : undefined;
}
/** A human reason: printable, one line, shortened. */
function text(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  // eslint-disable-next-line no-control-regex
  const clean = v.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim();
  return clean ? clean.slice(0, 200) : undefined;
}

/** A revoke that came again (the payload's `cause`): what made the credential active during the first one. */
function revokedAgain(f: NotificationFacts): string {
  if (!f.cause) return '';
  const during = f.revokedVersion === undefined ? 'during the revoke' : `during the revoke of version ${f.revokedVersion}`;
  return f.cause === 'rotated_during_revoke' ? ` again — a rotation made version ${f.version ?? '?'} active ${during}` : ` again — it was made active ${during}`;
}
