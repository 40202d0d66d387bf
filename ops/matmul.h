// ops/matmul.h: the linear layer, out = inp · Wᵀ + bias, used for qkv, the attention projection, the MLP
// and the LM head. W is stored (OC, C) as torch.nn.Linear and llm.c store it.
// Flow: model.h calls matmul() in the forward; the tape calls matmul_backward_node() in the backward.
// CPU: matmul_*_cpu_naive are the definition (three loops, used by tests as the reference); matmul_*_cpu run
// the same sums through gemm.h's packed gemm_cpu, every output element summed by one thread in a fixed order
// (results do not depend on the thread count). GPU: the products through gemm.h at the model's GemmLevel.
#pragma once
#include "../gemm.h"

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
//   dbias   (OC)    += Σ_n dout[n, :]      (bf16_dout: each dout value rounded to bf16 first, as the bf16 products
//                                           read it: tensor.h's kernels_bf16)
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

// the layer on the CPU, through gemm_cpu; bf16: out holds bf16 values (as_stored), rounded once the sums are done
static void matmul_forward_cpu(float* out, const float* inp, const float* weight, const float* bias, int N, int C,
                               int OC, GemmLevel level = GEMM_CUBLAS, bool bf16 = false) {
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, sizeof(float) * OC);
    }
    gemm_cpu(out, inp, weight, N, OC, C, false, true, bias != NULL, level);  // out (N,OC) (+)= inp (N,C) · Wᵀ
    if (bf16) device_round_bf16(DEV_CPU, out, out, (size_t)N * OC);
}

// backward formulas as in matmul_backward_cpu_naive above
static void matmul_backward_cpu(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                const float* weight, int N, int C, int OC, GemmLevel level = GEMM_CUBLAS,
                                bool bf16_dout = false) {
    if (dinp) gemm_cpu(dinp, dout, weight, N, C, OC, false, false, true, level);  // (N,C) += (N,OC)·(OC,C)
    gemm_cpu(dweight, dout, inp, OC, C, N, true, false, true, level);             // (OC,C) += (N,OC)ᵀ·(N,C)
    if (dbias) {
#pragma omp parallel for schedule(static)
        for (int o = 0; o < OC; o++) {
            float sum = 0.0f;  // rows in order: the same bits whatever the thread count
            for (int n = 0; n < N; n++) sum += as_stored(dout[(size_t)n * OC + o], bf16_dout);
            dbias[o] += sum;
        }
    }
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------------------------------
// CUDA kernels for the bias (the products are gemm.h's)

// out[n, o] = as_stored(out[n, o] + bias[o]) (bias may be NULL: the rounding alone): one thread per element, after
// the product (the CPU starts its sums from the bias: the same value up to the order of the additions)
static __global__ void matmul_bias_add_kernel(float* out, const float* bias, int N, int OC, bool bf16) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (size_t)N * OC) out[i] = as_stored(bias ? out[i] + bias[i % OC] : out[i], bf16);
}
// the same, four columns of a row a thread with 128-bit accesses (float4), where OC % 4 == 0 (four consecutive
// elements then share a row) and out and bias are 16-byte aligned
static __global__ void matmul_bias_add4_kernel(float* out, const float* bias, int N, int OC, bool bf16) {
    size_t i = 4 * ((size_t)blockIdx.x * blockDim.x + threadIdx.x);
    if (i >= (size_t)N * OC) return;
    float4 v = *(float4*)(out + i);
    if (bias) {
        float4 b = *(const float4*)(bias + i % OC);
        v = make_float4(v.x + b.x, v.y + b.y, v.z + b.z, v.w + b.w);
    }
    *(float4*)(out + i) =
        make_float4(as_stored(v.x, bf16), as_stored(v.y, bf16), as_stored(v.z, bf16), as_stored(v.w, bf16));
}

#define COLSUM_COLS 8    // columns per block (a 32-byte sector of each row)
#define COLSUM_LANES 64  // threads per column, each summing every 64th row

// dbias[o] += Σ_n dout[n, o] (backward formula above matmul_backward_cpu_naive). A block owns COLSUM_COLS
// columns and all rows: thread (col, lane) sums rows lane, lane + COLSUM_LANES, ... in order, then each
// column's COLSUM_LANES partial sums are added pairwise in shared memory. One block, one fixed order per
// column: no atomics, the same bits every run.
// (dout16: dout in 16-bit storage instead, dout NULL; bf16_dout: each value rounded to bf16 as it is read)
static __global__ void matmul_bias_backward_kernel(float* dbias, const float* dout, const bfloat16* dout16, int N,
                                                   int OC, bool bf16_dout) {
    __shared__ float partial[COLSUM_LANES][COLSUM_COLS];
    int col = threadIdx.x % COLSUM_COLS, lane = threadIdx.x / COLSUM_COLS;
    int o = blockIdx.x * COLSUM_COLS + col;
    float sum = 0.0f;
    if (o < OC)
        for (int n = lane; n < N; n += COLSUM_LANES)
            sum += as_stored(load_value(dout, dout16, (size_t)n * OC + o), bf16_dout);
    partial[lane][col] = sum;
    __syncthreads();
    for (int stride = COLSUM_LANES / 2; stride > 0; stride /= 2) {
        if (lane < stride) partial[lane][col] += partial[lane + stride][col];
        __syncthreads();
    }
    if (lane == 0 && o < OC) dbias[o] += partial[0][col];
}

// ----------------------------------------------------------------------------------------------------
// CUDA launchers: the CPU functions' arguments, as device pointers

// out (N, OC) = as_stored(out + bias) after a product: one pass (none when there is neither a bias nor rounding)
static void matmul_bias_round_cuda(float* out, const float* bias, int N, int OC, bool bf16) {
    size_t n = (size_t)N * OC;
    if ((bias || bf16) && n > 0) {
        if (OC % 4 == 0 && aligned16(out) && (!bias || aligned16(bias)))
            matmul_bias_add4_kernel<<<cuda_blocks(n / 4, 256), 256>>>(out, bias, N, OC, bf16);
        else
            matmul_bias_add_kernel<<<cuda_blocks(n, 256), 256>>>(out, bias, N, OC, bf16);
        cudaCheckLaunch();
    }
}

// out (N, OC) = inp (N, C) · weight (OC, C)ᵀ + bias; bf16: rounded in the bias kernel's pass (one pass either way)
static void matmul_forward_cuda(GemmLevel gemm, float* out, const float* inp, const float* weight, const float* bias,
                                int N, int C, int OC, bool bf16 = false) {
    gemm_cuda(gemm, out, inp, weight, N, OC, C, false, true, false);
    matmul_bias_round_cuda(out, bias, N, OC, bf16);
}

// backward formulas above matmul_backward_cpu_naive
static void matmul_backward_cuda(GemmLevel gemm, float* dinp, float* dweight, float* dbias, const float* dout,
                                 const float* inp, const float* weight, int N, int C, int OC, bool bf16_dout = false) {
    if (dinp) gemm_cuda(gemm, dinp, dout, weight, N, C, OC, false, false, true);  // (N,C) += (N,OC)·(OC,C)
    gemm_cuda(gemm, dweight, dout, inp, OC, C, N, true, false, true);             // (OC,C) += (N,OC)ᵀ·(N,C)
    if (dbias && OC > 0) {
        matmul_bias_backward_kernel<<<cuda_blocks(OC, COLSUM_COLS), COLSUM_COLS * COLSUM_LANES>>>(
            dbias, dout, (const bfloat16*)NULL, N, OC, bf16_dout);
        cudaCheckLaunch();
    }
}

// dweight (OC, C) += doutᵀ · inp and dbias (OC, or NULL) += Σ_n dout[n, :] with dout (N, OC) and inp (N, C) in
// bf16 (16-bit storage: matmul_bf16 below). With `epilogue`, the bias gradient, the row sums of doutᵀ, comes from the
// weight gradient's product, in its epilogue (gemm.h's gemm_lt_row_sums_cuda, into scratch it writes over, then
// added by the column-sum kernel over that one row); where cuBLASLt offers no such algorithm, or without
// `epilogue`, the column-sum kernel sums dout itself. Both sum dout as the products read it, in bf16. True when the
// epilogue computed it (dev/bench_gpu.cu times both ways).
static bool matmul_weight_bias_grad_bf16_cuda(float* dweight, float* dbias, const bfloat16* dout16,
                                              const bfloat16* inp16, int N, int C, int OC, bool epilogue) {
    static void* sums = NULL;
    static size_t sums_bytes = 0;
    bool with_bias = dbias && OC > 0;
    float* row_sums = with_bias ? (float*)device_scratch_grow(&sums, &sums_bytes, sizeof(float) * OC) : NULL;
    bool in_epilogue = with_bias && epilogue && N > 0 && C > 0 &&
                       gemm_lt_row_sums_cuda(dweight, row_sums, dout16, inp16, OC, C, N, true, false);
    if (!in_epilogue) gemm_bf16_cuda(dweight, dout16, inp16, OC, C, N, true, false, true);
    if (with_bias) {
        matmul_bias_backward_kernel<<<cuda_blocks(OC, COLSUM_COLS), COLSUM_COLS * COLSUM_LANES>>>(
            dbias, in_epilogue ? row_sums : NULL, in_epilogue ? NULL : dout16, in_epilogue ? 1 : N, OC, false);
        cudaCheckLaunch();
    }
    return in_epilogue;
}
#endif

// ----------------------------------------------------------------------------------------------------
// by device: the one place that picks the CPU or the CUDA code (`gemm`: the product level; the CPU rounds its
// inputs as the GPU's tensor cores would at TF32 and bf16, and computes the other levels in fp32)

static void matmul_forward(Device d, GemmLevel gemm, float* out, const float* inp, const float* weight,
                           const float* bias, int N, int C, int OC, bool bf16 = false) {
#ifdef __CUDACC__
    if (d == DEV_CUDA) return matmul_forward_cuda(gemm, out, inp, weight, bias, N, C, OC, bf16);
#endif
    matmul_forward_cpu(out, inp, weight, bias, N, C, OC, gemm, bf16);
}

static void matmul_backward(Device d, GemmLevel gemm, float* dinp, float* dweight, float* dbias, const float* dout,
                            const float* inp, const float* weight, int N, int C, int OC, bool bf16_dout = false) {
#ifdef __CUDACC__
    if (d == DEV_CUDA) return matmul_backward_cuda(gemm, dinp, dweight, dbias, dout, inp, weight, N, C, OC, bf16_dout);
#endif
    matmul_backward_cpu(dinp, dweight, dbias, dout, inp, weight, N, C, OC, gemm, bf16_dout);
}

// ----------------------------------------------------------------------------------------------------
// on the tape

static void matmul_backward_node(const TapeNode* node) {
    const Tensor *out = node->out, *inp = node->in[0], *weight = node->in[1], *bias = node->in[2];
    matmul_backward(out->device, node->kernels.gemm, inp->grad, weight->grad, bias ? bias->grad : NULL, out->grad,
                    inp->data, weight->data, node->dims[0], node->dims[1], node->dims[2], kernels_bf16(node->kernels));
}

static void matmul_bf16(Tape* tape, Tensor* out, Tensor* inp, Tensor* weight, Tensor* bias, Tensor* scratch, int N,
                        int C, int OC, Tensor* gelu_out, Tensor* gelu_in);

// out (N, OC) = inp (N, C) · weight (OC, C)ᵀ + bias (OC); bias may be NULL (the tied LM head has none). An input in
// 16-bit storage (data NULL) runs matmul_bf16 below, scratch its bf16 room for out's gradient; there GELU may run
// in the products' epilogues, in its two halves: gelu_out (or NULL) also gets GELU(out) (forward), and gelu_in (or
// NULL) says inp = GELU(gelu_in), so the backward writes gelu_in's gradient through GELU's derivative instead of
// inp's (the model's MLP, fc and fcproj, with no GELU op between them).
static void matmul(Tape* tape, Kernels kernels, Tensor* out, Tensor* inp, Tensor* weight, Tensor* bias, int N, int C,
                   int OC, Tensor* scratch = NULL, Tensor* gelu_out = NULL, Tensor* gelu_in = NULL) {
    if (!inp->data) return matmul_bf16(tape, out, inp, weight, bias, scratch, N, C, OC, gelu_out, gelu_in);
    if (gelu_out || gelu_in) die("matmul: GELU in the products' epilogues is 16-bit storage's only (%s)", out->name);
    matmul_forward(out->device, kernels.gemm, out->data, inp->data, weight->data, bias ? bias->data : NULL, N, C, OC,
                   out->bf16);
    TapeNode node = tape_node("matmul", matmul_backward_node, out, {inp, weight, bias}, {}, {N, C, OC});
    node.kernels = kernels;
    tape_push(tape, &node);
}

// ----------------------------------------------------------------------------------------------------
// in 16-bit storage (the GPU at --precision bf16 with bf16 products: model.h's gpt2_storage16)

// out = inp · Wᵀ + bias with bf16 operands on the bf16 tensor cores, fp32 sums (gemm.h). inp is in 16-bit storage
// (data16; matmul() comes here when it is); the weight's and bias's bf16 copies are the model's (data16). out is
// 16-bit storage: cuBLASLt adds the bias in the product's epilogue (gemm_lt_bf16_cuda), each value rounded once as it
// is stored, and with gelu_out computes GELU there too, out then holding GELU's input; or out is fp32 storage of bf16
// values: the bias and the rounding in the pass after the product, as matmul(). The backward formulas are
// matmul_backward_cpu_naive's, with dout in bf16: out's gradient in 16-bit storage (grad16: written by the next
// product's backward), the bf16 gradient the loss writes over out's values (the logits: out without an fp32
// gradient), or out's fp32 gradient rounded into `scratch` (the products would round it to bf16 anyway). With gelu_in
// (inp = GELU(gelu_in)), dinp = dout · W is multiplied by GELU'(gelu_in) in the product's epilogue and stored as
// gelu_in's gradient in bf16 (ops/gelu.h's backward formula; the next backward's products read it in bf16 anyway).
// The bias gradient comes from the weight gradient's product too, in its epilogue (gemm.h's gemm_lt_row_sums_cuda).
// The parameter gradients, and inp's otherwise, stay fp32. The same numbers as matmul() and gelu() at bf16 products,
// but for the one rounding point of the epilogue's GELU, which reads the fp32 sum (ops/gelu.h reads out's bf16 value);
// the bias gradient sums dout in bf16 either way, as the products read it (matmul() rounds it: kernels_bf16).
// The CPU has no 16-bit storage (its bf16 precision keeps bf16 values in fp32 buffers): never called there.

static void matmul_bf16_backward_node(const TapeNode* node) {
    const Tensor *out = node->out, *inp = node->in[0], *weight = node->in[1], *bias = node->in[2];
    const Tensor* gelu_in = node->saved[1];
    int N = node->dims[0], C = node->dims[1], OC = node->dims[2];
#ifdef __CUDACC__
    const bfloat16* dout16 = out->grad16 ? out->grad16 : out->data16;  // (the loss's gradient, over the logits)
    if (out->grad) {
        device_to_bf16(out->device, node->saved[0]->data16, out->grad, (size_t)N * OC);
        dout16 = node->saved[0]->data16;
    }
    if (gelu_in)  // (N, C) = ((N, OC)·(OC, C)) ∘ GELU'(gelu_in)
        gemm_lt_bf16_cuda(gelu_in->grad16, dout16, weight->data16, N, C, OC, false, false, NULL, GEMM_GELU_BACKWARD,
                          gelu_in->data16);
    else if (inp->grad)
        gemm_bf16_cuda(inp->grad, dout16, weight->data16, N, C, OC, false, false, true);
    float* dbias = bias && bias->grad ? bias->grad : NULL;
    static bool told = false;
    if (!matmul_weight_bias_grad_bf16_cuda(weight->grad, dbias, dout16, inp->data16, N, C, OC, true) && dbias &&
        OC > 0 && N > 0 && C > 0 && !told) {
        told = true;
        fprintf(stderr, "note: cuBLASLt offers no bias-gradient epilogue for %s's (%d x %d) weight gradient: the bias "
                "gradients by their own kernel\n", weight->name, OC, C);
    }
#else
    (void)out, (void)inp, (void)weight, (void)bias, (void)gelu_in, (void)N, (void)C, (void)OC;
    die("matmul_bf16: 16-bit storage is the GPU's only");
#endif
}

// out (N, OC) = inp (N, C) · weight (OC, C)ᵀ + bias (OC, or NULL); scratch: bf16 room for N·OC values of out's
// gradient (NULL where out has none in fp32); gelu_out (N, OC, or NULL): GELU(out), out and gelu_out in 16 bits;
// gelu_in (N, C, or NULL): inp = GELU(gelu_in), gelu_in's gradient in 16-bit storage (grad16) and inp without one
static void matmul_bf16(Tape* tape, Tensor* out, Tensor* inp, Tensor* weight, Tensor* bias, Tensor* scratch, int N,
                        int C, int OC, Tensor* gelu_out, Tensor* gelu_in) {
    bool out16 = !out->data;
    if (out->device != DEV_CUDA || inp->data || !inp->data16 || !weight->data16 || (!out->data && !out->data16) ||
        (out16 && bias && !bias->data16) || (gelu_out && (!out16 || gelu_out->data || !gelu_out->data16)) ||
        (gelu_in && (!gelu_in->data16 || !gelu_in->grad16 || inp->grad)) || (out->grad && (!scratch || !scratch->data16)))
        die("matmul_bf16: needs the GPU, %s's input in 16-bit storage, its weight's (and bias's) bf16 copy, room for "
            "its gradient in bf16, itself in 16 bits for GELU in the epilogue, and GELU's input and its gradient in "
            "16 bits for GELU's backward in it", out->name);
#ifdef __CUDACC__
    if (out16) {
        gemm_lt_bf16_cuda(gelu_out ? gelu_out->data16 : out->data16, inp->data16, weight->data16, N, OC, C, false, true,
                          bias ? bias->data16 : NULL, gelu_out ? GEMM_GELU_FORWARD : GEMM_NO_GELU,
                          gelu_out ? out->data16 : NULL);
    } else {
        gemm_bf16_cuda(out->data, inp->data16, weight->data16, N, OC, C, false, true, false);
        matmul_bias_round_cuda(out->data, bias ? bias->data : NULL, N, OC, out->bf16);
    }
#endif
    TapeNode node = tape_node("matmul_bf16", matmul_bf16_backward_node, out, {inp, weight, bias}, {scratch, gelu_in},
                              {N, C, OC});
    tape_push(tape, &node);
}
