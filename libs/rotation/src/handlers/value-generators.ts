import { randomBytes, randomInt } from 'node:crypto';
import { CredentialType } from '@app/credentials';
import type { PasswordPolicyOptions } from '../rotation.options';

/** Makes a new value of one credential type locally, for credentials the provider does not mint. */
export type ValueGenerator = () => string;

const LOWER = 'abcdefghijkmnopqrstuvwxyz';
const UPPER = 'ABCDEFGHJKLMNPQRSTUVWXYZ';
const DIGITS = '23456789';
const SYMBOLS = '!#%+-.:=?@_~';

/** 32 random bytes, base64url: 256 bits, safe in headers and URLs. */
export function generateApiKey(): string {
  return randomBytes(32).toString('base64url');
}

/** Standard Webhooks: `whsec_` + base64 of 32 random bytes. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** A password of `length` characters with at least one of each class (unbiased picks, shuffled). */
export function generatePassword(policy: Required<PasswordPolicyOptions>): string {
  const classes = policy.symbols ? [LOWER, UPPER, DIGITS, SYMBOLS] : [LOWER, UPPER, DIGITS];
  const all = classes.join('');
  const chars = classes.map((c) => c[randomInt(c.length)]);
  while (chars.length < policy.length) chars.push(all[randomInt(all.length)]);
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [chars[i], chars[j]] = [chars[j], chars[i]];
  }
  return chars.join('');
}

/** The generators per type: only types whose value we can make alone (not tokens, keys or certificates). */
export function defaultGenerators(password: Required<PasswordPolicyOptions>): Partial<Record<CredentialType, ValueGenerator>> {
  return {
    [CredentialType.API_KEY]: generateApiKey,
    [CredentialType.BASIC_AUTH_PASSWORD]: () => generatePassword(password),
    [CredentialType.WEBHOOK_SECRET]: generateWebhookSecret,
  };
}
