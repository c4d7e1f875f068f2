/**
 * ECDSA verification over a precomputed digest (FIPS 186-4 §6.4.2) for P-256, P-384 and P-521, in
 * BigInt arithmetic: node:crypto only verifies ECDSA over data it hashes itself. Verification uses
 * public values only, so constant time does not matter here. Points are Jacobian (X, Y, Z).
 */
interface Curve {
  p: bigint;
  n: bigint;
  b: bigint;
  gx: bigint;
  gy: bigint;
  bytes: number;
}

const h = (s: string) => BigInt(`0x${s.replace(/\s+/g, '')}`);

/** Domain parameters (SEC 2 / FIPS 186-4, a = p − 3); checked by the spec against node:crypto keys. */
export const CURVES: Readonly<Record<'P-256' | 'P-384' | 'P-521', Curve>> = {
  'P-256': {
    p: h('ffffffff 00000001 00000000 00000000 00000000 ffffffff ffffffff ffffffff'),
    n: h('ffffffff 00000000 ffffffff ffffffff bce6faad a7179e84 f3b9cac2 fc632551'),
    b: h('5ac635d8 aa3a93e7 b3ebbd55 769886bc 651d06b0 cc53b0f6 3bce3c3e 27d2604b'),
    gx: h('6b17d1f2 e12c4247 f8bce6e5 63a440f2 77037d81 2deb33a0 f4a13945 d898c296'),
    gy: h('4fe342e2 fe1a7f9b 8ee7eb4a 7c0f9e16 2bce3357 6b315ece cbb64068 37bf51f5'),
    bytes: 32,
  },
  'P-384': {
    p: (1n << 384n) - (1n << 128n) - (1n << 96n) + (1n << 32n) - 1n,
    n: h('ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff c7634d81 f4372ddf 581a0db2 48b0a77a ecec196a ccc52973'),
    b: h('b3312fa7 e23ee7e4 988e056b e3f82d19 181d9c6e fe814112 0314088f 5013875a c656398d 8a2ed19d 2a85c8ed d3ec2aef'),
    gx: h('aa87ca22 be8b0537 8eb1c71e f320ad74 6e1d3b62 8ba79b98 59f741e0 82542a38 5502f25d bf55296c 3a545e38 72760ab7'),
    gy: h('3617de4a 96262c6f 5d9e98bf 9292dc29 f8f41dbd 289a147c e9da3113 b5f0b8c0 0a60b1ce 1d7e819d 7a431d7c 90ea0e5f'),
    bytes: 48,
  },
  'P-521': {
    p: (1n << 521n) - 1n,
    n: h('01ff ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff fffffffa 51868783 bf2f966b 7fcc0148 f709a5d0 3bb5c9b8 899c47ae bb6fb71e 91386409'),
    b: h('0051 953eb961 8e1c9a1f 929a21a0 b68540ee a2da725b 99b315f3 b8b48991 8ef109e1 56193951 ec7e937b 1652c0bd 3bb1bf07 3573df88 3d2c34f1 ef451fd4 6b503f00'),
    gx: h('00c6 858e06b7 0404e9cd 9e3ecb66 2395b442 9c648139 053fb521 f828af60 6b4d3dba a14b5e77 efe75928 fe1dc127 a2ffa8de 3348b3c1 856a429b f97e7e31 c2e5bd66'),
    gy: h('0118 39296a78 9a3bc004 5c8a5fb4 2c7d1bd9 98f54449 579b4468 17afbd17 273e662c 97ee7299 5ef42640 c550b901 3fad0761 353c7086 a272c240 88be9476 9fd16650'),
    bytes: 66,
  },
};

type Point = [bigint, bigint, bigint];
const INFINITY: Point = [1n, 1n, 0n];

function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  let result = 1n;
  let b = base % m;
  for (let e = exp; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % m;
    b = (b * b) % m;
  }
  return result;
}

class Arithmetic {
  constructor(private readonly c: Curve) {}

  private m(x: bigint): bigint {
    const r = x % this.c.p;
    return r < 0n ? r + this.c.p : r;
  }

  double([x, y, z]: Point): Point {
    if (z === 0n || y === 0n) return INFINITY;
    const delta = this.m(z * z);
    const gamma = this.m(y * y);
    const beta = this.m(x * gamma);
    const alpha = this.m(3n * (x - delta) * (x + delta));
    const x3 = this.m(alpha * alpha - 8n * beta);
    const z3 = this.m((y + z) * (y + z) - gamma - delta);
    const y3 = this.m(alpha * (4n * beta - x3) - 8n * gamma * gamma);
    return [x3, y3, z3];
  }

  add(p1: Point, p2: Point): Point {
    const [x1, y1, z1] = p1;
    const [x2, y2, z2] = p2;
    if (z1 === 0n) return p2;
    if (z2 === 0n) return p1;
    const z1z1 = this.m(z1 * z1);
    const z2z2 = this.m(z2 * z2);
    const u1 = this.m(x1 * z2z2);
    const u2 = this.m(x2 * z1z1);
    const s1 = this.m(y1 * z2 * z2z2);
    const s2 = this.m(y2 * z1 * z1z1);
    const hh = this.m(u2 - u1);
    const r = this.m(2n * (s2 - s1));
    if (hh === 0n) return r === 0n ? this.double(p1) : INFINITY;
    const i = this.m(4n * hh * hh);
    const j = this.m(hh * i);
    const v = this.m(u1 * i);
    const x3 = this.m(r * r - j - 2n * v);
    const y3 = this.m(r * (v - x3) - 2n * s1 * j);
    const z3 = this.m(((z1 + z2) * (z1 + z2) - z1z1 - z2z2) * hh);
    return [x3, y3, z3];
  }

  /** u1·G + u2·Q in one pass (Shamir's trick). */
  twoScalars(u1: bigint, g: Point, u2: bigint, q: Point): Point {
    const gq = this.add(g, q);
    let acc = INFINITY;
    const bits = Math.max(u1.toString(2).length, u2.toString(2).length);
    for (let i = bits - 1; i >= 0; i--) {
      acc = this.double(acc);
      const b1 = (u1 >> BigInt(i)) & 1n;
      const b2 = (u2 >> BigInt(i)) & 1n;
      if (b1 && b2) acc = this.add(acc, gq);
      else if (b1) acc = this.add(acc, g);
      else if (b2) acc = this.add(acc, q);
    }
    return acc;
  }

  affineX([x, , z]: Point): bigint {
    const zInv = modPow(z, this.c.p - 2n, this.c.p);
    return this.m(x * zInv * zInv);
  }

  onCurve(x: bigint, y: bigint): boolean {
    const { p, b } = this.c;
    if (x < 0n || x >= p || y < 0n || y >= p) return false;
    return this.m(y * y - (x * x * x - 3n * x + b)) === 0n;
  }
}

const toBig = (bytes: Uint8Array): bigint => (bytes.length ? BigInt(`0x${Buffer.from(bytes).toString('hex')}`) : 0n);

/**
 * Verifies an ECDSA signature (r‖s, each `bytes` long, as JOSE and the vault use) over a digest with
 * the public point (x, y).
 */
export function ecdsaVerifyDigest(curveName: keyof typeof CURVES, x: Uint8Array, y: Uint8Array, digest: Uint8Array, signature: Uint8Array): boolean {
  const c = CURVES[curveName];
  if (signature.length !== 2 * c.bytes) return false;
  const r = toBig(signature.subarray(0, c.bytes));
  const s = toBig(signature.subarray(c.bytes));
  if (r <= 0n || r >= c.n || s <= 0n || s >= c.n) return false;
  const ar = new Arithmetic(c);
  const qx = toBig(x);
  const qy = toBig(y);
  if (!ar.onCurve(qx, qy)) return false;
  // e = the leftmost bitlen(n) bits of the digest.
  const nBits = c.n.toString(2).length;
  let e = toBig(digest);
  const dBits = digest.length * 8;
  if (dBits > nBits) e >>= BigInt(dBits - nBits);
  const w = modPow(s, c.n - 2n, c.n);
  const u1 = (e * w) % c.n;
  const u2 = (r * w) % c.n;
  const point = ar.twoScalars(u1, [c.gx, c.gy, 1n], u2, [qx, qy, 1n]);
  if (point[2] === 0n) return false;
  return ar.affineX(point) % c.n === r;
}

/** d·G for tests of the domain parameters (never used with secret scalars in the lib); undefined at infinity. */
export function multiplyGenerator(curveName: keyof typeof CURVES, d: bigint): { x: bigint; y: bigint } | undefined {
  const c = CURVES[curveName];
  const ar = new Arithmetic(c);
  const point = ar.twoScalars(d, [c.gx, c.gy, 1n], 0n, INFINITY);
  if (point[2] === 0n) return undefined;
  const zInv = modPow(point[2], c.p - 2n, c.p);
  return { x: (point[0] * zInv * zInv) % c.p, y: (point[1] * zInv * zInv * zInv) % c.p };
}

/** True when (x, y) is on the curve (tests of the domain parameters). */
export function isOnCurve(curveName: keyof typeof CURVES, x: bigint, y: bigint): boolean {
  return new Arithmetic(CURVES[curveName]).onCurve(x, y);
}
