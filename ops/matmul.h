// ops/matmul.h: the linear layer, out = inp · Wᵀ + bias, used for qkv, the attention projection, the MLP
// and the LM head. W is stored (OC, C) as torch.nn.Linear and llm.c store it.
// Flow: model.h calls matmul() in the forward; the tape calls matmul_backward_node() in the backward.
// CPU: matmul_*_cpu_naive are the definition (three loops, used by tests as the reference); gemm_cpu is the
// one training uses: the same sums, blocked for the caches and vectorized (the GotoBLAS loop order), with
// every output element summed by one thread in a fixed order, so results do not depend on thread count.
#pragma once
#include "../tensor.h"

// ----------------------------------------------------------------------------------------------------
// CPU reference

// out[n, o] = bias[o] + Σ_c inp[n, c] · weight[o, c]        inp (N, C), weight (OC, C), out (N, OC)
static void matmul_forward_cpu_naive(float* out, const float* inp, const float* weight, const float* bias,
                                     int N, int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            float sum = bias ? bias[o] : 0.0f;
            for (int c = 0; c < C; c++) sum += inp[(size_t)n * C + c] * weight[(size_t)o * C + c];
            out[(size_t)n * OC + o] = sum;
        }
}

// With L the loss and dout = dL/dout:
//   dinp    (N, C)  += dout · W            dinp[n, c]    += Σ_o dout[n, o] · W[o, c]
//   dweight (OC, C) += doutᵀ · inp         dweight[o, c] += Σ_n dout[n, o] · inp[n, c]
//   dbias   (OC)    += Σ_n dout[n, :]
static void matmul_backward_cpu_naive(float* dinp, float* dweight, float* dbias, const float* dout,
                                      const float* inp, const float* weight, int N, int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            float d = dout[(size_t)n * OC + o];
            for (int c = 0; c < C; c++) {
                if (dinp) dinp[(size_t)n * C + c] += d * weight[(size_t)o * C + c];
                dweight[(size_t)o * C + c] += d * inp[(size_t)n * C + c];
            }
            if (dbias) dbias[o] += d;
        }
}

// ----------------------------------------------------------------------------------------------------
// CPU blocked GEMM:  Cm (M, N) = [Cm +] op(A) (M, K) · op(B) (K, N), all row-major.
// op(A)[i, k] = trans_a ? A[k*M + i] : A[i*K + k];  op(B)[k, j] = trans_b ? B[j*K + k] : B[k*N + j].
// Blocking: a KC x NC slab of op(B) is packed once into NR-wide panels (shared by the threads); each task
// packs an MC x KC block of op(A) into MR-tall panels and runs the MR x NR micro-kernel over its columns.
// The micro-kernel keeps an MR x NR tile of sums in registers (6 x 16 floats = 12 AVX2 registers).

#define GEMM_MR 6
#define GEMM_NR 16
#define GEMM_MC 96
#define GEMM_KC 256
#define GEMM_NC 4096
#define GEMM_JC 256  // columns per task inside an NC slab: enough tasks for the threads even when M is small

// packs op(A)[i0 : i0+mc, k0 : k0+kc] as mc/MR panels, each kc columns of MR values (zero padded)
static void gemm_pack_a(float* Ap, const float* A, int M, int K, bool trans_a, int i0, int k0, int mc, int kc) {
    for (int ip = 0; ip < mc; ip += GEMM_MR)
        for (int k = 0; k < kc; k++)
            for (int r = 0; r < GEMM_MR; r++) {
                int i = i0 + ip + r;
                float v = 0.0f;
                if (ip + r < mc) v = trans_a ? A[(size_t)(k0 + k) * M + i] : A[(size_t)i * K + k0 + k];
                *Ap++ = v;
            }
}

// packs op(B)[k0 : k0+kc, j0 : j0+nc] as nc/NR panels, each kc rows of NR values (zero padded)
static void gemm_pack_b(float* Bp, const float* B, int N, int K, bool trans_b, int k0, int j0, int kc, int nc) {
    int panels = (nc + GEMM_NR - 1) / GEMM_NR;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < panels; p++) {
        float* dst = Bp + (size_t)p * kc * GEMM_NR;
        for (int k = 0; k < kc; k++)
            for (int c = 0; c < GEMM_NR; c++) {
                int jj = p * GEMM_NR + c;
                float v = 0.0f;
                if (jj < nc) v = trans_b ? B[(size_t)(j0 + jj) * K + k0 + k] : B[(size_t)(k0 + k) * N + j0 + jj];
                *dst++ = v;
            }
    }
}

// acc (MR x NR) = Σ_k Ap[k, :]ᵀ Bp[k, :]; then Cm[0:mr, 0:nr] (+)= acc.
// A row of 16 sums is two 8-float vectors (GCC's vector extension: plain `+` and `*` on vectors), so the
// compiler keeps all 6 x 16 sums in registers and issues one fused multiply-add per 8 products.
typedef float float8 __attribute__((vector_size(32)));

static void gemm_micro_kernel(int kc, const float* Ap, const float* Bp, float* Cm, int ldc, int mr, int nr,
                              bool overwrite) {
    float8 acc[GEMM_MR][2];
    for (int r = 0; r < GEMM_MR; r++) acc[r][0] = acc[r][1] = (float8){0, 0, 0, 0, 0, 0, 0, 0};
    for (int k = 0; k < kc; k++) {
        float8 b0, b1;
        memcpy(&b0, Bp + k * GEMM_NR, sizeof(b0));
        memcpy(&b1, Bp + k * GEMM_NR + 8, sizeof(b1));
        for (int r = 0; r < GEMM_MR; r++) {
            float a = Ap[k * GEMM_MR + r];  // broadcast to all 8 lanes by the vector-scalar product
            acc[r][0] += a * b0;
            acc[r][1] += a * b1;
        }
    }
    for (int r = 0; r < mr; r++) {
        float row[GEMM_NR];
        memcpy(row, &acc[r][0], sizeof(acc[r][0]));
        memcpy(row + 8, &acc[r][1], sizeof(acc[r][1]));
        float* dst = Cm + (size_t)r * ldc;
        for (int c = 0; c < nr; c++) dst[c] = overwrite ? row[c] : dst[c] + row[c];
    }
}

static float* gemm_packed_b_buffer() {
    static float* Bp = NULL;  // one KC x NC slab, allocated once and kept (no per-call allocation)
    if (!Bp) Bp = (float*)xmalloc(sizeof(float) * GEMM_KC * GEMM_NC);
    return Bp;
}

static void gemm_cpu(float* Cm, const float* A, const float* B, int M, int N, int K, bool trans_a, bool trans_b,
                     bool accumulate) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (size_t i = 0; i < (size_t)M * N; i++) Cm[i] = 0.0f;
        return;
    }
    float* Bp = gemm_packed_b_buffer();
    for (int j0 = 0; j0 < N; j0 += GEMM_NC) {
        int nc = N - j0 < GEMM_NC ? N - j0 : GEMM_NC;
        for (int k0 = 0; k0 < K; k0 += GEMM_KC) {
            int kc = K - k0 < GEMM_KC ? K - k0 : GEMM_KC;
            bool overwrite = (k0 == 0) && !accumulate;
            gemm_pack_b(Bp, B, N, K, trans_b, k0, j0, kc, nc);
            int row_blocks = (M + GEMM_MC - 1) / GEMM_MC;
            int col_blocks = (nc + GEMM_JC - 1) / GEMM_JC;
#pragma omp parallel for collapse(2) schedule(static)
            for (int ib = 0; ib < row_blocks; ib++)
                for (int jb = 0; jb < col_blocks; jb++) {
                    float Ap[GEMM_MC * GEMM_KC];  // this task's packed A block (96 KiB on the stack)
                    int i0 = ib * GEMM_MC;
                    int mc = M - i0 < GEMM_MC ? M - i0 : GEMM_MC;
                    gemm_pack_a(Ap, A, M, K, trans_a, i0, k0, mc, kc);
                    int jend = (jb + 1) * GEMM_JC < nc ? (jb + 1) * GEMM_JC : nc;
                    for (int jr = jb * GEMM_JC; jr < jend; jr += GEMM_NR) {
                        int nr = jend - jr < GEMM_NR ? jend - jr : GEMM_NR;
                        for (int ir = 0; ir < mc; ir += GEMM_MR) {
                            int mr = mc - ir < GEMM_MR ? mc - ir : GEMM_MR;
                            gemm_micro_kernel(kc, Ap + (size_t)ir * kc, Bp + (size_t)jr * kc,
                                              Cm + (size_t)(i0 + ir) * N + j0 + jr, N, mr, nr, overwrite);
                        }
                    }
                }
        }
    }
}

// the layer on the CPU, through gemm_cpu
static void matmul_forward_cpu(float* out, const float* inp, const float* weight, const float* bias, int N, int C,
                               int OC) {
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, sizeof(float) * OC);
    }
    gemm_cpu(out, inp, weight, N, OC, C, false, true, bias != NULL);  // out (N,OC) (+)= inp (N,C) · Wᵀ
}

// backward formulas as in matmul_backward_cpu_naive above
static void matmul_backward_cpu(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                const float* weight, int N, int C, int OC) {
    if (dinp) gemm_cpu(dinp, dout, weight, N, C, OC, false, false, true);  // (N,C) += (N,OC)·(OC,C)
    gemm_cpu(dweight, dout, inp, OC, C, N, true, false, true);             // (OC,C) += (N,OC)ᵀ·(N,C)
    if (dbias) {
#pragma omp parallel for schedule(static)
        for (int o = 0; o < OC; o++) {
            float sum = 0.0f;  // rows in order: the same bits whatever the thread count
            for (int n = 0; n < N; n++) sum += dout[(size_t)n * OC + o];
            dbias[o] += sum;
        }
    }
}

// ----------------------------------------------------------------------------------------------------
// on the tape

static void matmul_backward_node(const TapeNode* node) {
    const Tensor *out = node->out, *inp = node->in[0], *weight = node->in[1], *bias = node->in[2];
    int N = node->dims[0], C = node->dims[1], OC = node->dims[2];
    matmul_backward_cpu(inp->grad, weight->grad, bias ? bias->grad : NULL, out->grad, inp->data, weight->data,
                        N, C, OC);
}

// out (N, OC) = inp (N, C) · weight (OC, C)ᵀ + bias (OC); bias may be NULL (the tied LM head has none)
static void matmul(Tape* tape, Tensor* out, Tensor* inp, Tensor* weight, Tensor* bias, int N, int C, int OC) {
    matmul_forward_cpu(out->data, inp->data, weight->data, bias ? bias->data : NULL, N, C, OC);
    TapeNode node = tape_node("matmul", matmul_backward_node, out);
    node.in[0] = inp;
    node.in[1] = weight;
    node.in[2] = bias;
    node.dims[0] = N;
    node.dims[1] = C;
    node.dims[2] = OC;
    tape_push(tape, &node);
}
