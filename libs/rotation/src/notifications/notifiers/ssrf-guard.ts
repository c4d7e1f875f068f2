import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { hasControlCharacter } from '@app/common';
import { NotificationSettingsInvalidError, NotificationTargetForbiddenError } from '../notification.errors';

/** Addresses a tenant's webhook must not reach by default: this host, its networks, cloud metadata. */
const BLOCKED = new BlockList();
/** Apart: an IPv6 rule such as ::/96 would match IPv4 addresses too in a shared BlockList. */
const BLOCKED_V6 = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24],
  ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) BLOCKED.addSubnet(net, prefix, 'ipv4');
// Besides this host's and private networks: the ranges that embed an IPv4 address a gateway may translate
// to (IPv4-compatible ::/96, IPv4-translated ::ffff:0:0/96 — below, BlockList does not match it —, NAT64
// 64:ff9b::/96 and the local-use 64:ff9b:1::/48, 6to4 2002::/16, Teredo 2001::/32): a tenant could reach
// 127.0.0.1 or 10.x through them.
for (const [net, prefix] of [
  ['::', 96], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8], ['64:ff9b::', 96], ['64:ff9b:1::', 48],
  ['2002::', 16], ['2001::', 32], ['2001:db8::', 32], ['100::', 64],
] as const) BLOCKED_V6.addSubnet(net, prefix, 'ipv6');

export const MAX_WEBHOOK_URL_LENGTH = 2048;

/** True for loopback, private, link-local, CGNAT, documentation, multicast and unspecified addresses. */
export function isPrivateAddress(ip: string): boolean {
  const family = isIP(ip);
  if (family === 4) return BLOCKED.check(ip, 'ipv4');
  if (family !== 6) return true; // not an address at all: refuse
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return BLOCKED.check(mapped[1], 'ipv4');
  // The URL parser writes a mapped IPv4 in hex (`::ffff:7f00:1`).
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(ip);
  if (hex) {
    const [hi, lo] = [parseInt(hex[1], 16), parseInt(hex[2], 16)];
    return BLOCKED.check(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, 'ipv4');
  }
  if (/^::ffff:0:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/i.test(ip)) return true; // IPv4-translated (never a public destination)
  return BLOCKED_V6.check(ip, 'ipv6');
}

/**
 * A tenant's webhook URL, checked for shape: http(s) only, a host, a port other than 0, no user:password part (it
 * would end up in logs of proxies), no space or control character, at most 2048 characters. Messages never quote the URL.
 */
export function parseWebhookUrl(raw: unknown): URL {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_WEBHOOK_URL_LENGTH) {
    throw new NotificationSettingsInvalidError(`webhookUrl must be a URL of 1 to ${MAX_WEBHOOK_URL_LENGTH} characters`, 'webhookUrl');
  }
  // The URL parser drops tabs and line breaks anywhere and spaces or control characters around it, without a word:
  // the URL stored would not be the one sent.
  if (hasControlCharacter(raw) || raw.includes(' ')) throw new NotificationSettingsInvalidError('webhookUrl must not contain spaces or control characters', 'webhookUrl');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new NotificationSettingsInvalidError('webhookUrl must be an absolute URL', 'webhookUrl');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new NotificationTargetForbiddenError('only http and https URLs are allowed');
  if (!url.hostname) throw new NotificationSettingsInvalidError('webhookUrl must name a host', 'webhookUrl');
  // Port 0 names no destination: every delivery would fail.
  if (url.port === '0') throw new NotificationSettingsInvalidError('webhookUrl port must be from 1 to 65535', 'webhookUrl');
  if (url.username || url.password) throw new NotificationSettingsInvalidError('webhookUrl must not contain a user name or password', 'webhookUrl');
  return url;
}

/** The host of `url` as a connectable name (IPv6 literals without brackets). */
export function urlHost(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

/** scheme://host:port only: what logs and audit rows may say about a webhook URL. */
export function urlOrigin(url: URL): string {
  return url.origin;
}

/**
 * Refuses a URL whose host is, or resolves to, a private address (unless `allowPrivate`). Checked
 * when settings are saved, for early feedback; the sender checks again at connect time
 * (`guardedLookup`), because DNS can change in between (rebinding).
 */
export async function assertPublicTarget(url: URL, allowPrivate: boolean, resolve: LookupFunction = dnsLookup as unknown as LookupFunction): Promise<void> {
  if (allowPrivate) return;
  const host = urlHost(url);
  if (isIP(host)) {
    if (isPrivateAddress(host)) throw new NotificationTargetForbiddenError();
    return;
  }
  if (host === 'localhost' || host.endsWith('.localhost')) throw new NotificationTargetForbiddenError();
  const addresses = await new Promise<LookupAddress[]>((ok, fail) =>
    resolve(host, { all: true }, (err, result) => (err ? fail(new NotificationSettingsInvalidError('webhookUrl host does not resolve', 'webhookUrl')) : ok(result as unknown as LookupAddress[]))),
  );
  if (addresses.length === 0 || addresses.some((a) => isPrivateAddress(a.address))) throw new NotificationTargetForbiddenError();
}

/**
 * A `lookup` for http.request that fails the connection when the name resolves to a private address,
 * so the address checked is the address connected to. (IP-literal hosts never reach `lookup`: the
 * sender checks those itself.)
 */
export function guardedLookup(allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const list = addresses as LookupAddress[];
      if (!allowPrivate && (list.length === 0 || list.some((a) => isPrivateAddress(a.address)))) {
        return callback(new NotificationTargetForbiddenError() as unknown as NodeJS.ErrnoException, '', 0);
      }
      if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list);
      callback(null, list[0].address, list[0].family);
    });
  };
}
