// step_graph.h: a training micro-step, and with --cuda-graph 1 on the GPU the same micro-step captured once as a
// CUDA graph and replayed: the forward, the loss with its gradient and the backward go to the GPU as one launch
// instead of one per kernel, copy and library call (110 for the 2-layer test model at bf16), so the host's launch
// overhead leaves the step.
// Flow: run.h's run_train_step -> step_micro -> gpt2_load_batch (host to device), then the graph (or
// gpt2_run_forward and gpt2_backward, model.h), then gpt2_batch_loss (device to host) -> optimizer_step.
//
// Why the micro-step can be captured: between loading the batch and reading its losses back, its device work
// makes no host round trip and is the same every time:
//  - no copy to or from the host, no synchronisation, no allocation: the workspaces grown on first use (cuBLASLt's,
//    the bias gradients' row sums) reach their size in the first micro-step, which runs eagerly;
//  - the same launches with the same arguments for every batch: the number of distinct tokens, which the
//    embedding's backward needs, is read by its kernel from the token table (ops/embedding.h);
//  - one stream that can be captured: nvcc builds with `--default-stream per-thread` (Makefile), and cuBLAS,
//    cuBLASLt and NCCL are given that stream (device.h, gemm.h, dist.h).
// The CUDA emulation in tests/ refuses in a capture what CUDA's global capture mode refuses (host copies,
// synchronisation, allocation, a library on the legacy stream), so a round trip added later fails the tests.
// Replaying is exact: the same kernels with the same arguments in the same order, so the same bits as the eager
// micro-step (tested). What stays outside the graph: the optimizer step, whose clipping factor, AdamW slice table,
// health norms and the spectral family's stopping rule are decided on the host (README: CUDA graphs).
#pragma once
#include "model.h"

struct StepGraph {
    bool enabled;          // --cuda-graph 1, on the GPU
    int eager_micro_steps;  // run so far without a graph (the first grows the workspaces)
    int B, T;              // what the graph was captured for
    float loss_scale;
#ifdef __CUDACC__
    cudaGraphExec_t exec;  // the captured micro-step, or NULL
#endif
};

static void step_graph_init(StepGraph* g, bool enabled) {
    memset(g, 0, sizeof(*g));
    g->enabled = enabled;
}

static void step_graph_free(StepGraph* g) {
#ifdef __CUDACC__
    if (g->exec) cudaCheck(cudaGraphExecDestroy(g->exec));
#endif
    step_graph_init(g, g->enabled);
}

#ifdef __CUDACC__
// Records the micro-step's device work (the batch already loaded) into g->exec; nothing runs yet.
static void step_graph_capture(StepGraph* g, GPT2* m, int B, int T, float loss_scale) {
    cudaGraph_t graph = NULL;
    cudaCheck(cudaStreamBeginCapture(cudaStreamPerThread, cudaStreamCaptureModeGlobal));
    gpt2_run_forward(m, B, T, true, loss_scale);
    gpt2_backward(m, B, T, loss_scale);
    cudaError_t e = cudaStreamEndCapture(cudaStreamPerThread, &graph);
    if (e != cudaSuccess)
        die("--cuda-graph 1: capturing the training step as a CUDA graph failed (%s): run with --cuda-graph 0",
            cudaGetErrorString(e));
    cudaCheck(cudaGraphInstantiate(&g->exec, graph, 0));
    cudaCheck(cudaGraphDestroy(graph));
    g->B = B;
    g->T = T;
    g->loss_scale = loss_scale;
}
#endif

// One micro-step on ids and targets (B, T, host memory): the loss's gradient for loss_scale added into the
// parameters' gradients. Returns the micro-batch's mean loss (read back once the backward is queued).
static float step_micro(StepGraph* g, GPT2* m, const int* ids, const int* targets, int B, int T, float loss_scale) {
    gpt2_load_batch(m, ids, targets, B, T);
#ifdef __CUDACC__
    if (g->enabled && m->device == DEV_CUDA) {
        if (g->exec && (g->B != B || g->T != T || g->loss_scale != loss_scale)) step_graph_free(g);  // new shapes
        if (!g->exec && g->eager_micro_steps > 0) step_graph_capture(g, m, B, T, loss_scale);
        if (g->exec) {
            cudaCheck(cudaGraphLaunch(g->exec, cudaStreamPerThread));
            return gpt2_batch_loss(m, B * T);
        }
        g->eager_micro_steps++;
    }
#endif
    gpt2_run_forward(m, B, T, true, loss_scale);
    gpt2_backward(m, B, T, loss_scale);
    return gpt2_batch_loss(m, B * T);
}
