// sha256-merkle-v1 on the GPU (packages/residency/FORMAT.md, src/merkle.ts is the CPU reference).
//
//   leaf(c)   = SHA-256(P || c), P = 64 zero bytes      (RFC 9162 §2.1.1 leaf prefix 0x00, padded to a block)
//   node(l,r) = SHA-256(0x01 || l || r)                  (RFC 9162 §2.1.1 node prefix)
//   tree      = bottom-up pairing, an odd last node is carried up unchanged
//
// SHA-256 itself is FIPS 180-4 §6.2. Compiled to PTX (`npm run build:ptx`) and shipped in ../ptx/;
// the backend loads it with cuModuleLoadData, so no toolkit is needed at run time.
//
// Performance notes (one thread per leaf, SHA-256 is integer-ALU bound):
//  * P is one whole block, so the first compression of every leaf is the constant midstate MID and the
//    chunk bytes stay 64-byte aligned: each thread streams its leaf with four 16-byte loads per block,
//    and loads the next block before compressing the current one.
//  * On Volta..Hopper, SHF/LOP3/IADD3/PRMT issue to the ALU pipe and IMAD to the FMA pipe, each 16 lanes
//    per SM sub-partition. A plain SHA-256 puts nearly everything on the ALU pipe. With VS_BALANCE >= 1
//    the additions are written as `mad.lo.u32 d, a, one, b` and the σ right shifts as `mul.hi.u32`
//    with multipliers passed as kernel parameters (so ptxas cannot fold them back), which moves them to
//    the FMA pipe; VS_BALANCE >= 2 also computes one rotation of Σ1 (and of σ0 in odd schedule rounds)
//    as hi+lo of a multiplication by 2^(32-n).
//  * Measured on an H100 80GB HBM3 (leaf kernel, 16 KiB leaves, 8 / 32 GiB): VS_BALANCE 0 0.77 / 0.79
//    TB/s, 1 0.89 / 0.92, 2 0.84 / 0.87 (mul.hi costs more than it saves); VS_REORDER and
//    __launch_bounds__(128, 6) add about 1%. Same run, 8 GiB: VS_SCHED_ALU 0.86 (worse: the ALU pipe is
//    the limit), VS_SHR_ALU 0.91 (same as mul.hi), VS_UNROLL 2 0.68, VS_MINB 5 / 7 0.91 / 0.90.
//    SASS per compression (sm_90): 576 SHF + ~373 LOP3 + 8 PRMT on the ALU pipe, ~690 IMAD on the FMA
//    pipe; at 1.98 GHz a fully busy ALU pipe gives about 1.15 TB/s, and we measure about 80% of it.
#include <stdint.h>

#ifndef VS_BALANCE
#define VS_BALANCE 1
#endif
#ifndef VS_PREFETCH
#define VS_PREFETCH 1
#endif
#ifndef VS_REORDER
#define VS_REORDER 1
#endif
#ifndef VS_MINB
#define VS_MINB 6
#endif
// Experiment switches (off in the shipped PTX): schedule additions / σ shifts left to ptxas (ALU pipe),
// two blocks per loop iteration.
#ifndef VS_SCHED_ALU
#define VS_SCHED_ALU 0
#endif
#ifndef VS_SHR_ALU
#define VS_SHR_ALU 0
#endif
#ifndef VS_UNROLL
#define VS_UNROLL 1
#endif
#if VS_MINB > 0
#define VS_LEAF_BOUNDS __launch_bounds__(128, VS_MINB)
#else
#define VS_LEAF_BOUNDS __launch_bounds__(128)
#endif

// Multipliers passed by the host: one = 1, m[n] = 2^(32-n) for the shifts/rotations we need.
struct VsMul {
  uint32_t one;
  uint32_t m3;   // >> 3   (σ0)
  uint32_t m10;  // >> 10  (σ1)
  uint32_t m25;  // rotr 25 (Σ1)
  uint32_t m18;  // rotr 18 (σ0)
};

__device__ __forceinline__ uint32_t rotr(uint32_t x, uint32_t n) { return __funnelshift_r(x, x, n); }
__device__ __forceinline__ uint32_t bswap(uint32_t x) { return __byte_perm(x, 0, 0x0123); }

#if VS_BALANCE >= 1
__device__ __forceinline__ uint32_t add2(uint32_t a, uint32_t b, uint32_t one) {
  uint32_t d;
  asm("mad.lo.u32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(one), "r"(b));
  return d;
}
__device__ __forceinline__ uint32_t shr_m(uint32_t x, uint32_t m) {
  uint32_t d;
  asm("mul.hi.u32 %0, %1, %2;" : "=r"(d) : "r"(x), "r"(m));
  return d;
}
#else
__device__ __forceinline__ uint32_t add2(uint32_t a, uint32_t b, uint32_t) { return a + b; }
#endif
#if VS_BALANCE >= 2
// rotr(x, n) = hi(x * 2^(32-n)) + lo(x * 2^(32-n)); the two halves do not overlap.
__device__ __forceinline__ uint32_t rotr_m(uint32_t x, uint32_t m) {
  uint32_t hi, d;
  asm("mul.hi.u32 %0, %1, %2;" : "=r"(hi) : "r"(x), "r"(m));
  asm("mad.lo.u32 %0, %1, %2, %3;" : "=r"(d) : "r"(x), "r"(m), "r"(hi));
  return d;
}
#endif

__device__ __forceinline__ uint32_t bsig1(uint32_t e, const VsMul& k) {
#if VS_BALANCE >= 2
  return rotr(e, 6) ^ rotr(e, 11) ^ rotr_m(e, k.m25);
#else
  return rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
#endif
}
__device__ __forceinline__ uint32_t bsig0(uint32_t a) { return rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22); }
__device__ __forceinline__ uint32_t ssig0(uint32_t x, const VsMul& k, bool odd) {
#if VS_BALANCE >= 2
  if (odd) return rotr(x, 7) ^ rotr_m(x, k.m18) ^ shr_m(x, k.m3);
#endif
#if VS_BALANCE >= 1
#if VS_SHR_ALU
  return rotr(x, 7) ^ rotr(x, 18) ^ (x >> 3);
#else
  return rotr(x, 7) ^ rotr(x, 18) ^ shr_m(x, k.m3);
#endif
#else
  return rotr(x, 7) ^ rotr(x, 18) ^ (x >> 3);
#endif
}
__device__ __forceinline__ uint32_t ssig1(uint32_t x, const VsMul& k) {
#if VS_BALANCE >= 1
#if VS_SHR_ALU
  return rotr(x, 17) ^ rotr(x, 19) ^ (x >> 10);
#else
  return rotr(x, 17) ^ rotr(x, 19) ^ shr_m(x, k.m10);
#endif
#else
  return rotr(x, 17) ^ rotr(x, 19) ^ (x >> 10);
#endif
}

__constant__ uint32_t VS_K[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u};

// FIPS 180-4 §5.3.3 initial hash value, and the state after compressing the 64-byte zero block P
// (the leaf prefix): every leaf starts from MID.
#define VS_IV {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au, 0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u}
#define VS_MID {0xda5698beu, 0x17b9b469u, 0x62335799u, 0x779fbecau, 0x8ce5d491u, 0xc0d26243u, 0xbafef9eau, 0x1837a9d8u}

// FIPS 180-4 §6.2.2: one compression of the 16 message words w (big-endian words) into st.
__device__ __forceinline__ void compress(uint32_t st[8], uint32_t w[16], const VsMul& k) {
  const uint32_t one = k.one;
  uint32_t a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
#pragma unroll
  for (int i = 0; i < 64; i++) {
    uint32_t wi;
    if (i < 16) {
      wi = w[i];
    } else {
      const uint32_t s0 = ssig0(w[(i - 15) & 15], k, (i & 1) != 0);
      const uint32_t s1 = ssig1(w[(i - 2) & 15], k);
#if VS_SCHED_ALU
      wi = w[i & 15] + s0 + w[(i - 7) & 15] + s1;
#else
      wi = add2(add2(add2(w[i & 15], s0, one), w[(i - 7) & 15], one), s1, one);
#endif
      w[i & 15] = wi;
    }
    const uint32_t ch = (e & f) ^ (~e & g);
#if VS_REORDER
    // h + K + W does not depend on e: keep it off the e -> Σ1 -> t1 -> e' critical path.
    const uint32_t t1 = add2(add2(add2(add2(h, VS_K[i], one), wi, one), ch, one), bsig1(e, k), one);
#else
    const uint32_t t1 = add2(add2(add2(add2(h, bsig1(e, k), one), ch, one), VS_K[i], one), wi, one);
#endif
    const uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
    h = g;
    g = f;
    f = e;
    e = add2(d, t1, one);
    d = c;
    c = b;
    b = a;
#if VS_REORDER
    a = add2(add2(t1, maj, one), bsig0(a), one);
#else
    a = add2(add2(t1, bsig0(a), one), maj, one);
#endif
  }
  st[0] += a; st[1] += b; st[2] += c; st[3] += d; st[4] += e; st[5] += f; st[6] += g; st[7] += h;
}

__device__ __forceinline__ uint4 ldg16(const uint8_t* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }

// Leaf hashes. Thread t hashes leaf i = indices ? indices[t] : t, covering bytes
// [i << leafShift, min(length, (i + 1) << leafShift)) of data, and writes the 32-byte digest to
// out + 32 t (digest byte order). data must be 16-byte aligned (cuMemAlloc gives 256).
extern "C" __global__ void VS_LEAF_BOUNDS vs_merkle_leaves(
    const uint8_t* __restrict__ data, unsigned long long length, unsigned int leafShift,
    const unsigned int* __restrict__ indices, unsigned int count, uint32_t* __restrict__ out, VsMul k) {
  const unsigned int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= count) return;
  const unsigned long long i = indices ? indices[t] : t;
  const unsigned long long start = i << leafShift;
  const unsigned long long leafEnd = start + (1ull << leafShift);
  const unsigned long long end = leafEnd < length ? leafEnd : length;
  const unsigned long long len = end - start;
  const uint8_t* p = data + start;
  const unsigned long long nfull = len >> 6;

  uint32_t st[8] = VS_MID;
  uint32_t w[16];
#if VS_PREFETCH
  uint4 n0, n1, n2, n3;
  if (nfull > 0) { n0 = ldg16(p); n1 = ldg16(p + 16); n2 = ldg16(p + 32); n3 = ldg16(p + 48); }
#if VS_UNROLL == 2
#pragma unroll 2
#endif
  for (unsigned long long blk = 0; blk < nfull; blk++) {
    const uint4 c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    if (blk + 1 < nfull) {
      const uint8_t* q = p + ((blk + 1) << 6);
      n0 = ldg16(q); n1 = ldg16(q + 16); n2 = ldg16(q + 32); n3 = ldg16(q + 48);
    }
#else
  for (unsigned long long blk = 0; blk < nfull; blk++) {
    const uint8_t* q = p + (blk << 6);
    const uint4 c0 = ldg16(q), c1 = ldg16(q + 16), c2 = ldg16(q + 32), c3 = ldg16(q + 48);
#endif
    w[0] = bswap(c0.x); w[1] = bswap(c0.y); w[2] = bswap(c0.z); w[3] = bswap(c0.w);
    w[4] = bswap(c1.x); w[5] = bswap(c1.y); w[6] = bswap(c1.z); w[7] = bswap(c1.w);
    w[8] = bswap(c2.x); w[9] = bswap(c2.y); w[10] = bswap(c2.z); w[11] = bswap(c2.w);
    w[12] = bswap(c3.x); w[13] = bswap(c3.y); w[14] = bswap(c3.z); w[15] = bswap(c3.w);
    compress(st, w, k);
  }
  // Tail bytes and FIPS 180-4 §5.1.1 padding: 0x80, zeros, 64-bit big-endian bit length of P || chunk.
  const unsigned int rem = (unsigned int)(len & 63);
  const uint8_t* q = p + (nfull << 6);
#pragma unroll
  for (int j = 0; j < 16; j++) w[j] = 0;
  for (unsigned int j = 0; j < rem; j++) w[j >> 2] |= (uint32_t)q[j] << (24 - 8 * (j & 3));
  w[rem >> 2] |= 0x80u << (24 - 8 * (rem & 3));
  if (rem >= 56) {
    compress(st, w, k);
#pragma unroll
    for (int j = 0; j < 16; j++) w[j] = 0;
  }
  const unsigned long long bits = (64ull + len) * 8ull;
  w[14] = (uint32_t)(bits >> 32);
  w[15] = (uint32_t)bits;
  compress(st, w, k);
  uint4* o = reinterpret_cast<uint4*>(out + 8ull * t);
  o[0] = make_uint4(bswap(st[0]), bswap(st[1]), bswap(st[2]), bswap(st[3]));
  o[1] = make_uint4(bswap(st[4]), bswap(st[5]), bswap(st[6]), bswap(st[7]));
}

// node(l, r) = SHA-256(0x01 || l || r): 65 bytes, two blocks. l, r, result as big-endian words.
__device__ void node_hash(const uint32_t l[8], const uint32_t r[8], uint32_t res[8], const VsMul& k) {
  uint32_t st[8] = VS_IV;
  uint32_t w[16];
  w[0] = 0x01000000u | (l[0] >> 8);
#pragma unroll
  for (int j = 1; j < 8; j++) w[j] = (l[j - 1] << 24) | (l[j] >> 8);
  w[8] = (l[7] << 24) | (r[0] >> 8);
#pragma unroll
  for (int j = 1; j < 8; j++) w[8 + j] = (r[j - 1] << 24) | (r[j] >> 8);
  compress(st, w, k);
  w[0] = (r[7] << 24) | 0x00800000u;
#pragma unroll
  for (int j = 1; j < 15; j++) w[j] = 0;
  w[15] = 65u * 8u;
  compress(st, w, k);
#pragma unroll
  for (int j = 0; j < 8; j++) res[j] = st[j];
}

#define VS_REDUCE_THREADS 256
#define VS_REDUCE_SPAN (2 * VS_REDUCE_THREADS)

// One fused pass over up to 9 tree levels: block b reduces nodes [512 b, 512 b + 512) of a level of
// n nodes (32 bytes each, digest byte order) to node b of the level 9 steps up. Pairing inside an
// aligned block of 2^9 nodes is the global bottom-up pairing, and a block's odd last node is the
// level's last node, carried up unchanged, so repeating this until one node is left gives the root.
extern "C" __global__ void __launch_bounds__(VS_REDUCE_THREADS) vs_merkle_reduce(
    const uint32_t* __restrict__ in, unsigned int n, uint32_t* __restrict__ out, VsMul k) {
  __shared__ uint32_t s[VS_REDUCE_SPAN][8];
  const unsigned int base = blockIdx.x * VS_REDUCE_SPAN;
  unsigned int m = n - base < VS_REDUCE_SPAN ? n - base : VS_REDUCE_SPAN;
  for (unsigned int j = threadIdx.x; j < m; j += blockDim.x) {
#pragma unroll
    for (int q = 0; q < 8; q++) s[j][q] = bswap(in[8ull * (base + j) + q]);
  }
  __syncthreads();
  while (m > 1) {
    const unsigned int pairs = m >> 1;
    uint32_t res[8];
    const unsigned int j = threadIdx.x;
    if (j < pairs) node_hash(s[2 * j], s[2 * j + 1], res, k);
    __syncthreads();
    if (j < pairs) {
#pragma unroll
      for (int q = 0; q < 8; q++) s[j][q] = res[q];
    }
    if ((m & 1) && j == 0) {
#pragma unroll
      for (int q = 0; q < 8; q++) s[pairs][q] = s[m - 1][q];
    }
    __syncthreads();
    m = (m + 1) >> 1;
  }
  if (threadIdx.x < 8) out[8ull * blockIdx.x + threadIdx.x] = bswap(s[0][threadIdx.x]);
}
