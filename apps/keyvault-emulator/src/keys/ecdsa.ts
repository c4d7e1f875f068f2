import { createECDH, randomBytes } from 'node:crypto';

/**
 * ECDSA over a digest the caller already computed (Key Vault's sign/verify take a digest, and
 * node:crypto only signs messages it hashes itself). k·G comes from OpenSSL through ECDH; the
 * verification's u1·G + u2·Q is done here with BigInt Jacobian arithmetic. Checked against
 * node:crypto in both directions by the specs.
 */
export interface Curve {
  /** JWK name (Key Vault's). */
  crv: 'P-256' | 'P-384' | 'P-521' | 'P-256K';
  /** OpenSSL name, for ECDH and key generation. */
  openssl: string;
  /** Coordinate / scalar length in bytes (signatures are r||s of twice this). */
  size: number;
  p: bigint;
  a: bigint;
  n: bigint;
  gx: bigint;
  gy: bigint;
}

const h = (hex: string) => BigInt(`0x${hex}`);
const P256 = h('ffffffff00000001000000000000000000000000ffffffffffffffffffffffff');
const P384 = h('fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff');
const P521 = (1n << 521n) - 1n;
const K256 = h('fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f');

export const CURVES: Record<Curve['crv'], Curve> = {
  'P-256': {
    crv: 'P-256',
    openssl: 'prime256v1',
    size: 32,
    p: P256,
    a: P256 - 3n,
    n: h('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551'),
    gx: h('6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296'),
    gy: h('4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5'),
  },
  'P-384': {
    crv: 'P-384',
    openssl: 'secp384r1',
    size: 48,
    p: P384,
    a: P384 - 3n,
    n: h('ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973'),
    gx: h('aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7'),
    gy: h('3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f'),
  },
  'P-521': {
    crv: 'P-521',
    openssl: 'secp521r1',
    size: 66,
    p: P521,
    a: P521 - 3n,
    n: h('01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409'),
    gx: h('00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66'),
    gy: h('011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650'),
  },
  'P-256K': {
    crv: 'P-256K',
    openssl: 'secp256k1',
    size: 32,
    p: K256,
    a: 0n,
    n: h('fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141'),
    gx: h('79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798'),
    gy: h('483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8'),
  },
};

const mod = (x: bigint, m: bigint) => {
  const r = x % m;
  return r < 0n ? r + m : r;
};

function inverse(x: bigint, m: bigint): bigint {
  let [a, b, u, v] = [mod(x, m), m, 1n, 0n];
  while (b !== 0n) {
    const q = a / b;
    [a, b] = [b, a - q * b];
    [u, v] = [v, u - q * v];
  }
  return mod(u, m);
}

export const toBigInt = (buf: Uint8Array) => (buf.length === 0 ? 0n : BigInt(`0x${Buffer.from(buf).toString('hex')}`));
export const toFixedBytes = (x: bigint, size: number) => Buffer.from(x.toString(16).padStart(size * 2, '0'), 'hex');

/** Jacobian point; z = 0 is the point at infinity. */
type Point = [bigint, bigint, bigint];
const INFINITY: Point = [1n, 1n, 0n];

function double(c: Curve, [x, y, z]: Point): Point {
  if (z === 0n || y === 0n) return INFINITY;
  const { p } = c;
  const yy = mod(y * y, p);
  const s = mod(4n * x * yy, p);
  const zz = mod(z * z, p);
  const m = mod(3n * x * x + c.a * zz * zz, p);
  const x3 = mod(m * m - 2n * s, p);
  const y3 = mod(m * (s - x3) - 8n * yy * yy, p);
  return [x3, y3, mod(2n * y * z, p)];
}

function add(c: Curve, a: Point, b: Point): Point {
  if (a[2] === 0n) return b;
  if (b[2] === 0n) return a;
  const { p } = c;
  const z1z1 = mod(a[2] * a[2], p);
  const z2z2 = mod(b[2] * b[2], p);
  const u1 = mod(a[0] * z2z2, p);
  const u2 = mod(b[0] * z1z1, p);
  const s1 = mod(a[1] * b[2] * z2z2, p);
  const s2 = mod(b[1] * a[2] * z1z1, p);
  if (u1 === u2) return s1 === s2 ? double(c, a) : INFINITY;
  const hh = mod(u2 - u1, p);
  const r = mod(s2 - s1, p);
  const h2 = mod(hh * hh, p);
  const h3 = mod(h2 * hh, p);
  const x3 = mod(r * r - h3 - 2n * u1 * h2, p);
  const y3 = mod(r * (u1 * h2 - x3) - s1 * h3, p);
  return [x3, y3, mod(hh * a[2] * b[2], p)];
}

/** u1·G + u2·Q (Shamir's trick), affine x of the result or undefined at infinity. */
function linearCombinationX(c: Curve, u1: bigint, u2: bigint, q: Point): bigint | undefined {
  const g: Point = [c.gx, c.gy, 1n];
  const gq = add(c, g, q);
  let acc = INFINITY;
  const bits = Math.max(u1.toString(2).length, u2.toString(2).length);
  for (let i = bits - 1; i >= 0; i--) {
    acc = double(c, acc);
    const b1 = (u1 >> BigInt(i)) & 1n;
    const b2 = (u2 >> BigInt(i)) & 1n;
    if (b1 && b2) acc = add(c, acc, gq);
    else if (b1) acc = add(c, acc, g);
    else if (b2) acc = add(c, acc, q);
  }
  if (acc[2] === 0n) return undefined;
  const zInv = inverse(acc[2], c.p);
  return mod(acc[0] * zInv * zInv, c.p);
}

/** The digest as an integer, keeping its leftmost bits when it is longer than n (SEC 1, 4.1.3). */
function digestToInt(c: Curve, digest: Uint8Array): bigint {
  const nBits = c.n.toString(2).length;
  const z = toBigInt(digest);
  const extra = digest.length * 8 - nBits;
  return extra > 0 ? z >> BigInt(extra) : z;
}

/** Signs a digest with private scalar `d`; the JWS form r||s. */
export function ecdsaSignDigest(c: Curve, d: bigint, digest: Uint8Array): Buffer {
  const z = digestToInt(c, digest);
  const ecdh = createECDH(c.openssl);
  for (;;) {
    const k = mod(toBigInt(randomBytes(c.size + 8)), c.n - 1n) + 1n;
    ecdh.setPrivateKey(toFixedBytes(k, c.size));
    const R = ecdh.getPublicKey(); // 04 | x | y
    const r = mod(toBigInt(R.subarray(1, 1 + c.size)), c.n);
    if (r === 0n) continue;
    const s = mod(inverse(k, c.n) * (z + r * d), c.n);
    if (s === 0n) continue;
    return Buffer.concat([toFixedBytes(r, c.size), toFixedBytes(s, c.size)]);
  }
}

/** Verifies a JWS r||s signature of a digest against public point (x, y). */
export function ecdsaVerifyDigest(c: Curve, x: bigint, y: bigint, digest: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 2 * c.size) return false;
  const r = toBigInt(signature.subarray(0, c.size));
  const s = toBigInt(signature.subarray(c.size));
  if (r <= 0n || r >= c.n || s <= 0n || s >= c.n) return false;
  const w = inverse(s, c.n);
  const z = digestToInt(c, digest);
  const vx = linearCombinationX(c, mod(z * w, c.n), mod(r * w, c.n), [x, y, 1n]);
  return vx !== undefined && mod(vx, c.n) === r;
}
