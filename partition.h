// partition.h: which rank updates which parameters, in a run of several ranks (dist.h).
// - Distributed Muon: each hidden matrix is orthogonalized by one rank, its owner, which alone keeps its momentum.
//   The matrices are dealt out by Newton–Schulz cost, the dearest first, each to the least loaded rank (the
//   longest-processing-time rule), so with N ranks the Muon step costs about 1/N of one rank's.
// - ZeRO-1 for AdamW, as llm.c: the parameters AdamW updates, taken in order as one flat range, are cut into N
//   equal shares; a rank keeps the moments of its share only and updates only it.
// A rank's parameters are a list of pieces (a whole matrix, or the part of a tensor inside its AdamW share), and its
// optimizer state is those pieces' m and v, packed one after another. After each step every rank sends its updated
// pieces, packed the same way, and every rank unpacks all of them (one all-gather): each parameter has one writer,
// so the ranks hold the same bits. With one rank there is one piece per tensor and the packed layout is the
// parameters' own.
// Flow: optim.h builds it at init; optimizer_step updates this rank's pieces, then partition_gather_params;
// checkpoint.h saves partition_gather_state's whole state and resumes with partition_take_own.
#pragma once
#include "dist.h"
#include "model_config.h"

// [offset, offset + count) of the flat parameters, inside tensor slot `slot`; its state is at `state` in its
// rank's packed m and v (and its values at `state` in that rank's block of the gather)
struct Piece {
    size_t offset, count, state;
    int slot;
};

struct Partition {
    int rank, ranks;
    Device device;
    Piece* pieces;   // every rank's pieces, rank after rank, each rank's in parameter order
    int* first;      // (ranks + 1) rank r's pieces: pieces[first[r]] .. pieces[first[r + 1] - 1]
    size_t* floats;  // (ranks) the parameters each rank updates: the length of its m and v
    size_t share;    // the largest of those: one rank's block in the parameter gather
    float* send;     // (share) device: this rank's updated pieces, packed; NULL with one rank
    float* recv;     // (ranks × share) device: every rank's
};

// matrix_cost[i] > 0: slot i is updated whole by one rank and costs that much (a matrix method); 0: AdamW's, shared
// flat. Every rank computes the same partition from the same slots.
static void partition_build(Partition* p, const ParamSlot* slots, int num_slots, const double* matrix_cost, int rank,
                            int ranks, Device d) {
    memset(p, 0, sizeof(*p));
    p->rank = rank;
    p->ranks = ranks;
    p->device = d;
    int* owner = (int*)xmalloc(sizeof(int) * num_slots);
    double* load = (double*)xcalloc(ranks, sizeof(double));
    bool* dealt = (bool*)xcalloc(num_slots, sizeof(bool));
    size_t adamw_total = 0;
    for (int i = 0; i < num_slots; i++) {
        owner[i] = -1;
        if (matrix_cost[i] <= 0) adamw_total += (size_t)slots[i].rows * slots[i].cols;
    }
    for (;;) {  // the dearest matrix not yet dealt (the first of equals) to the least loaded rank (the lowest of equals)
        int next = -1;
        for (int i = 0; i < num_slots; i++)
            if (matrix_cost[i] > 0 && !dealt[i] && (next < 0 || matrix_cost[i] > matrix_cost[next])) next = i;
        if (next < 0) break;
        int r = 0;
        for (int k = 1; k < ranks; k++)
            if (load[k] < load[r]) r = k;
        owner[next] = r;
        load[r] += matrix_cost[next];
        dealt[next] = true;
    }
    p->pieces = (Piece*)xmalloc(sizeof(Piece) * (size_t)num_slots * ranks);
    p->first = (int*)xcalloc(ranks + 1, sizeof(int));
    p->floats = (size_t*)xcalloc(ranks, sizeof(size_t));
    int n = 0;
    for (int r = 0; r < ranks; r++) {
        p->first[r] = n;
        size_t lo = adamw_total * r / ranks, hi = adamw_total * (r + 1) / ranks;  // this rank's AdamW share
        size_t at = 0;                                                            // AdamW's parameters before slot i
        for (int i = 0; i < num_slots; i++) {
            size_t count = (size_t)slots[i].rows * slots[i].cols;
            Piece piece = {slots[i].offset, count, p->floats[r], i};
            if (matrix_cost[i] <= 0) {
                size_t begin = at > lo ? at : lo, end = at + count < hi ? at + count : hi;
                at += count;
                if (begin >= end) continue;
                piece.offset += begin - (at - count);
                piece.count = end - begin;
            } else if (owner[i] != r) {
                continue;
            }
            p->pieces[n++] = piece;
            p->floats[r] += piece.count;
        }
        if (p->floats[r] > p->share) p->share = p->floats[r];
    }
    p->first[ranks] = n;
    free(owner);
    free(load);
    free(dealt);
    if (ranks > 1) {
        p->send = (float*)device_malloc(d, sizeof(float) * p->share);
        p->recv = (float*)device_malloc(d, sizeof(float) * p->share * ranks);
    }
}

static void partition_free(Partition* p) {
    free(p->pieces);
    free(p->first);
    free(p->floats);
    if (p->send) device_free(p->device, p->send);
    if (p->recv) device_free(p->device, p->recv);
    memset(p, 0, sizeof(*p));
}

// After this rank updated its pieces of `params` (on the device): every rank's pieces into every rank's params.
static void partition_gather_params(Partition* p, float* params) {
    if (p->ranks == 1) return;
    for (int k = p->first[p->rank]; k < p->first[p->rank + 1]; k++) {
        const Piece* q = &p->pieces[k];
        device_copy(p->device, p->send + q->state, params + q->offset, q->count * sizeof(float));
    }
    dist_allgather(p->device, p->send, p->recv, p->share);
    for (int r = 0; r < p->ranks; r++)
        for (int k = p->first[r]; r != p->rank && k < p->first[r + 1]; k++) {
            const Piece* q = &p->pieces[k];
            device_copy(p->device, params + q->offset, p->recv + r * p->share + q->state, q->count * sizeof(float));
        }
}

// A packed per-rank state (this rank's `mine`, floats[rank] floats, host) as the whole state in the parameters'
// layout, on rank 0 (`whole`: as many floats as parameters; untouched elsewhere). Every rank calls it.
static void partition_gather_state(const Partition* p, const float* mine, float* whole) {
    if (p->ranks == 1) {  // one rank: unpacked straight from `mine`, no exchange and no buffers
        for (int k = 0; k < p->first[1]; k++)
            memcpy(whole + p->pieces[k].offset, mine + p->pieces[k].state, p->pieces[k].count * sizeof(float));
        return;
    }
    float* block = (float*)xcalloc(p->share, sizeof(float));
    float* all = dist_root() ? (float*)xmalloc(sizeof(float) * p->share * p->ranks) : NULL;
    memcpy(block, mine, sizeof(float) * p->floats[p->rank]);
    dist_gather_root(block, all, p->share);
    for (int r = 0; all && r < p->ranks; r++)
        for (int k = p->first[r]; k < p->first[r + 1]; k++) {
            const Piece* q = &p->pieces[k];
            memcpy(whole + q->offset, all + r * p->share + q->state, q->count * sizeof(float));
        }
    free(block);
    free(all);
}

// The reverse, on each rank from its own copy of the whole state: this rank's pieces, packed (host buffers).
static void partition_take_own(const Partition* p, const float* whole, float* mine) {
    for (int k = p->first[p->rank]; k < p->first[p->rank + 1]; k++) {
        const Piece* q = &p->pieces[k];
        memcpy(mine + q->state, whole + q->offset, q->count * sizeof(float));
    }
}
