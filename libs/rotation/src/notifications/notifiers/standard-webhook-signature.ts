import { WEBHOOK_SECRET_PREFIX, webhookSignatureBytes } from '../../webhooks/standard-webhooks';

/**
 * Standard Webhooks headers for one message, signed with the webhooks part's HMAC of
 * `id.timestamp.body`. The key is the base64-decoded part after `whsec_` — leniently (Node also
 * decodes base64url, which the settings accept) — and a secret without the prefix keys with its UTF-8
 * bytes. The notifications only sign, never verify.
 */
export function standardWebhookHeaders(secret: string, id: string, timestampSeconds: number, body: string): Record<string, string> {
  const key = secret.startsWith(WEBHOOK_SECRET_PREFIX) ? Buffer.from(secret.slice(WEBHOOK_SECRET_PREFIX.length), 'base64') : Buffer.from(secret, 'utf8');
  const signature = webhookSignatureBytes(key, id, timestampSeconds, body).toString('base64');
  return { 'webhook-id': id, 'webhook-timestamp': String(timestampSeconds), 'webhook-signature': `v1,${signature}` };
}
