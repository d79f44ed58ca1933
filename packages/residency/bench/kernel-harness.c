// Standalone check of the shipped Merkle PTX through the CUDA driver API (dlopen, no toolkit needed).
// Build: gcc -O2 -o kernel-harness kernel-harness.c -ldl
// Usage: kernel-harness vectors.txt variant.ptx...   (vectors: "<size> <leafShift> <hex root>" lines,
// data byte j = (j * 131 + (j >> 11)) & 0xff). Prints correctness and leaf-kernel GB/s at 1/8/32 GiB.
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
typedef void *CUctx, *CUmod, *CUfn, *CUev;
static CUresult (*cuInit)(unsigned), (*cuDeviceGet)(int *, int), (*cuDevicePrimaryCtxRetain)(CUctx *, int),
    (*cuCtxSetCurrent)(CUctx), (*cuModuleLoadData)(CUmod *, const void *), (*cuModuleGetFunction)(CUfn *, CUmod, const char *),
    (*cuMemAlloc)(CUdeviceptr *, size_t), (*cuMemFree)(CUdeviceptr), (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t),
    (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t),
    (*cuLaunchKernel)(CUfn, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void *, void **, void **),
    (*cuEventCreate)(CUev *, unsigned), (*cuEventRecord)(CUev, void *), (*cuEventSynchronize)(CUev),
    (*cuEventElapsedTime)(float *, CUev, CUev), (*cuCtxSynchronize)(void), (*cuMemsetD32)(CUdeviceptr, unsigned, size_t),
    (*cuGetErrorName)(CUresult, const char **), (*cuDeviceGetName)(char *, int, int);

#define CK(x) do { CUresult r_ = (x); if (r_) { const char *s_ = "?"; cuGetErrorName(r_, &s_); fprintf(stderr, "%s:%d %s -> %s\n", __FILE__, __LINE__, #x, s_); exit(2); } } while (0)
#define SYM(n, s) do { *(void **)&n = dlsym(lib, s); if (!n) { fprintf(stderr, "missing %s\n", s); exit(2); } } while (0)

typedef struct { uint32_t one, m3, m10, m25, m18; } VsMul;
static const VsMul K = {1u, 1u << 29, 1u << 22, 1u << 7, 1u << 14};

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb"); if (!f) { perror(path); exit(2); }
  fseek(f, 0, SEEK_END); long n = ftell(f); fseek(f, 0, SEEK_SET);
  char *b = malloc(n + 1); if (fread(b, 1, n, f) != (size_t)n) exit(2); b[n] = 0; fclose(f); return b;
}

static CUfn fleaves, freduce;
// Digest of [buf, buf+len) with leafShift; scratch a, b hold leafCount*32 bytes each. Returns root in out32.
static void root_of(CUdeviceptr buf, unsigned long long len, unsigned shift, CUdeviceptr a, CUdeviceptr b, uint8_t *out32) {
  unsigned n = (unsigned)((len + (1ull << shift) - 1) >> shift);
  void *idx = NULL;
  void *args[] = {&buf, &len, &shift, &idx, &n, &a, (void *)&K};
  CK(cuLaunchKernel(fleaves, (n + 127) / 128, 1, 1, 128, 1, 1, 0, NULL, args, NULL));
  CUdeviceptr in = a, out = b;
  while (n > 1) {
    void *rargs[] = {&in, &n, &out, (void *)&K};
    unsigned blocks = (n + 511) / 512;
    CK(cuLaunchKernel(freduce, blocks, 1, 1, 256, 1, 1, 0, NULL, rargs, NULL));
    n = blocks; CUdeviceptr t = in; in = out; out = t;
  }
  CK(cuMemcpyDtoH(out32, in, 32));
}

int main(int argc, char **argv) {
  void *lib = dlopen("libcuda.so.1", RTLD_NOW); if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 2; }
  SYM(cuGetErrorName, "cuGetErrorName"); SYM(cuInit, "cuInit"); SYM(cuDeviceGet, "cuDeviceGet");
  SYM(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"); SYM(cuCtxSetCurrent, "cuCtxSetCurrent");
  SYM(cuModuleLoadData, "cuModuleLoadData"); SYM(cuModuleGetFunction, "cuModuleGetFunction");
  SYM(cuMemAlloc, "cuMemAlloc_v2"); SYM(cuMemFree, "cuMemFree_v2"); SYM(cuMemcpyHtoD, "cuMemcpyHtoD_v2");
  SYM(cuMemcpyDtoH, "cuMemcpyDtoH_v2"); SYM(cuLaunchKernel, "cuLaunchKernel"); SYM(cuEventCreate, "cuEventCreate");
  SYM(cuEventRecord, "cuEventRecord"); SYM(cuEventSynchronize, "cuEventSynchronize");
  SYM(cuEventElapsedTime, "cuEventElapsedTime"); SYM(cuCtxSynchronize, "cuCtxSynchronize");
  SYM(cuMemsetD32, "cuMemsetD32_v2"); SYM(cuDeviceGetName, "cuDeviceGetName");
  CK(cuInit(0)); int dev; CK(cuDeviceGet(&dev, 0)); CUctx ctx; CK(cuDevicePrimaryCtxRetain(&ctx, dev)); CK(cuCtxSetCurrent(ctx));
  char name[256]; CK(cuDeviceGetName(name, 256, dev)); printf("device: %s\n", name);

  const unsigned long long GiB = 1ull << 30, big = 32 * GiB;
  CUdeviceptr buf, sa, sb; CK(cuMemAlloc(&buf, big)); CK(cuMemAlloc(&sa, 64 << 20)); CK(cuMemAlloc(&sb, 64 << 20));
  // correctness data: first 8 MiB + 4 KiB pattern
  size_t plen = (8 << 20) + 4096; uint8_t *h = malloc(plen);
  for (size_t j = 0; j < plen; j++) h[j] = (uint8_t)((j * 131 + (j >> 11)) & 0xff);
  CUev e0, e1; CK(cuEventCreate(&e0, 0)); CK(cuEventCreate(&e1, 0));
  int fails = 0;
  for (int v = 2; v < argc; v++) {
    CUmod mod; char *ptx = slurp(argv[v]);
    CK(cuModuleLoadData(&mod, ptx));
    CK(cuModuleGetFunction(&fleaves, mod, "vs_merkle_leaves")); CK(cuModuleGetFunction(&freduce, mod, "vs_merkle_reduce"));
    CK(cuMemcpyHtoD(buf, h, plen));
    FILE *vf = fopen(argv[1], "r"); unsigned long long size; unsigned shift; char hex[80]; int ok = 0, bad = 0;
    while (fscanf(vf, "%llu %u %79s", &size, &shift, hex) == 3) {
      uint8_t r[32]; char got[65]; root_of(buf, size, shift, sa, sb, r);
      for (int q = 0; q < 32; q++) sprintf(got + 2 * q, "%02x", r[q]);
      if (strcmp(got, hex) == 0) ok++; else { bad++; if (bad < 4) printf("  MISMATCH size=%llu shift=%u got %s want %s\n", size, shift, got, hex); }
    }
    fclose(vf); fails += bad;
    printf("%s: vectors ok=%d bad=%d\n", argv[v], ok, bad);
    CK(cuMemsetD32(buf, 0x9e3779b9u, big / 4));
    unsigned long long sizes[3] = {GiB, 8 * GiB, 32 * GiB};
    for (int s = 0; s < 3; s++) {
      unsigned long long len = sizes[s]; unsigned shift = 14; unsigned n = (unsigned)(len >> shift);
      void *idx = NULL; void *args[] = {&buf, &len, &shift, &idx, &n, &sa, (void *)&K};
      if (n * 32ull > (64ull << 20)) { fprintf(stderr, "scratch too small\n"); return 2; }
      CK(cuLaunchKernel(fleaves, (n + 127) / 128, 1, 1, 128, 1, 1, 0, NULL, args, NULL)); CK(cuCtxSynchronize());
      float best = 1e9, ms; float all[5];
      for (int it = 0; it < 5; it++) {
        CK(cuEventRecord(e0, NULL)); CK(cuLaunchKernel(fleaves, (n + 127) / 128, 1, 1, 128, 1, 1, 0, NULL, args, NULL));
        CK(cuEventRecord(e1, NULL)); CK(cuEventSynchronize(e1)); CK(cuEventElapsedTime(&ms, e0, e1)); all[it] = ms; if (ms < best) best = ms;
      }
      // full digest (leaves + reduce + 32-byte copy back) timed with events
      uint8_t r[32]; CK(cuEventRecord(e0, NULL)); root_of(buf, len, shift, sa, sb, r); CK(cuEventRecord(e1, NULL)); CK(cuEventSynchronize(e1));
      float full; CK(cuEventElapsedTime(&full, e0, e1));
      printf("  leaves %2llu GiB: best %.3f ms (%.3f TB/s) runs %.3f %.3f %.3f %.3f %.3f; full digest %.3f ms (%.3f TB/s)\n", len / GiB, best,
             len / best / 1e9, all[0], all[1], all[2], all[3], all[4], full, len / full / 1e9);
    }
  }
  return fails ? 1 : 0;
}
