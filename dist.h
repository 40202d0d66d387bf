// dist.h: data parallel across processes: the ranks of a run and what they say to each other.
// `mpirun -np N ./train ...` starts N copies of the binary; each is a rank. MPI (OpenMPI) starts and
// coordinates them and moves host buffers; NCCL moves GPU buffers, its unique id passed over MPI. Every rank
// holds the whole model, reads its own slice of each global batch (data/loader.h), and the gradients are
// summed across ranks here; then each rank updates only the parameters it owns (partition.h) and the updated
// parameters are gathered, so every rank steps identically. Rank 0 alone logs, samples and writes files.
// Built in when MPI's headers are found (USE_MPI; NCCL's too under nvcc: USE_NCCL); without MPI, or started
// without mpirun, a run is one rank and every call here does nothing.
// Determinism: MPI and NCCL pick their reduction order from the message size and the rank count only, so a
// run repeats bit for bit with the same N; and since each parameter comes from its one owner, ranks can never
// drift apart, whatever the reduction order.
// Flow: main -> dist_init -> [run.h: dist_sum of the gradients and losses -> partition.h: dist_allgather of the
// parameters; checkpoint.h: dist_gather_root of the optimizer state] -> dist_finalize.
#pragma once
#include "device.h"
#ifdef USE_MPI
#define OMPI_SKIP_MPICXX 1  // the C API only (OpenMPI's C++ bindings are deprecated)
#include <mpi.h>
#endif
#if defined(USE_NCCL) && defined(USE_MPI) && defined(__CUDACC__)
#include <nccl.h>
#define DIST_NCCL 1
#endif

struct Dist {
    int rank, ranks;              // this process, and how many there are
    int local_rank, local_ranks;  // on this machine: which GPU a rank takes, how many cores it gets
    bool mpi;                     // MPI is initialized (the process was started by mpirun)
#ifdef DIST_NCCL
    ncclComm_t nccl;              // set up by dist_use_gpu
    bool nccl_ready;
#endif
};
static Dist dist = {0, 1, 0, 1, false};  // one rank until dist_init finds an mpirun

static bool dist_root() { return dist.rank == 0; }

static const char* dist_build() {
#ifdef DIST_NCCL
    return "MPI and NCCL";
#elif defined(USE_MPI)
    return "MPI (GPU buffers staged through the host: built without NCCL)";
#else
    return "";
#endif
}

#ifdef USE_MPI
#define MPI_CHUNK (1 << 30)  // MPI counts are ints: long buffers go in pieces
static void mpi_check(int rc, const char* what) {
    if (rc != MPI_SUCCESS) die("MPI error in %s (code %d)", what, rc);
}
// a rank's error ends the job: every rank is killed, none waits forever for the one that left (common.h's die)
static void dist_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
#endif
#ifdef DIST_NCCL
static void nccl_check(ncclResult_t r, const char* what) {
    if (r != ncclSuccess) die("NCCL error in %s: %s", what, ncclGetErrorString(r));
}
#endif

// Started by mpirun (OpenMPI's, or a PMI launcher's variables): MPI_Init, this rank, the ranks on this machine.
// A non-root rank keeps its stderr (its own errors) and sends its stdout to /dev/null: rank 0 speaks for the run.
static void dist_init(int* argc, char*** argv) {
#ifdef USE_MPI
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK")) return;
    mpi_check(MPI_Init(argc, argv), "MPI_Init");
    dist.mpi = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &dist.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &dist.ranks);
    MPI_Comm local;
    mpi_check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, dist.rank, MPI_INFO_NULL, &local), "split");
    MPI_Comm_rank(local, &dist.local_rank);
    MPI_Comm_size(local, &dist.local_ranks);
    MPI_Comm_free(&local);
    die_rank = dist.rank;
    die_exit = dist_abort;
    if (dist.rank > 0 && !freopen("/dev/null", "w", stdout)) die("cannot silence stdout");
#else
    (void)argc;
    (void)argv;
#endif
}

static void dist_finalize() {
#ifdef DIST_NCCL
    if (dist.nccl_ready) ncclCommDestroy(dist.nccl);
    dist.nccl_ready = false;
#endif
#ifdef USE_MPI
    if (dist.mpi) MPI_Finalize();
    dist.mpi = false;
#endif
}

// A GPU run: each rank takes GPU (local rank mod the GPUs there are), then the NCCL communicator is made (rank
// 0's unique id broadcast over MPI), also for one rank under mpirun (so one GPU can run the NCCL path). Called
// before any CUDA allocation.
static void dist_use_gpu() {
#ifdef __CUDACC__
    if (!dist.mpi) return;
    int gpus = 0;
    cudaCheck(cudaGetDeviceCount(&gpus));
    cudaCheck(cudaSetDevice(dist.local_rank % gpus));
#ifdef DIST_NCCL
    if (dist.local_ranks > gpus)  // NCCL refuses two ranks on one GPU ("duplicate GPU")
        die("%d ranks on this machine but %d GPU%s: NCCL needs a GPU for each rank (run mpirun -np %d here, or --device "
            "cpu)", dist.local_ranks, gpus, gpus == 1 ? "" : "s", gpus);
    ncclUniqueId id;
    if (dist.rank == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    mpi_check(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
    nccl_check(ncclCommInitRank(&dist.nccl, dist.ranks, id, dist.rank), "ncclCommInitRank");
    dist.nccl_ready = true;
#endif
#endif
}

// "2 ranks over MPI (2 on this machine, CPU)", for the start-up lines
static void dist_describe(Device d, char* out, size_t size) {
#ifdef DIST_NCCL
    const char* via = d == DEV_CUDA ? "NCCL" : "MPI";
#else
    const char* via = d == DEV_CUDA ? "MPI through the host" : "MPI";
#endif
    if (dist.ranks == 1) snprintf(out, size, "1 rank");
    else snprintf(out, size, "%d ranks over %s (%d on this machine, %s)", dist.ranks, via, dist.local_ranks,
                  d == DEV_CUDA ? "one GPU each: local rank mod GPUs" : "CPU");
}

// ----------------------------------------------------------------------------------------------------
// host buffers over MPI

// x[i] = Σ over ranks of x[i], in place, on every rank (doubles: the losses of a step)
static void dist_sum_doubles(double* x, int n) {
#ifdef USE_MPI
    if (dist.ranks > 1) mpi_check(MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
#else
    (void)x;
    (void)n;
#endif
}

// every rank's `count` floats into root's recv (rank r's at recv + r·count; recv is ranks·count floats, on root)
static void dist_gather_root(const float* send, float* recv, size_t count) {
    if (dist.rank == 0) memcpy(recv, send, count * sizeof(float));
#ifdef USE_MPI
    for (int r = 1; r < dist.ranks; r++)
        for (size_t at = 0; at < count; at += MPI_CHUNK) {
            int n = (int)(count - at < (size_t)MPI_CHUNK ? count - at : MPI_CHUNK);
            if (dist.rank == 0)
                mpi_check(MPI_Recv(recv + (size_t)r * count + at, n, MPI_FLOAT, r, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "MPI_Recv");
            else if (dist.rank == r) mpi_check(MPI_Send(send + at, n, MPI_FLOAT, 0, 7, MPI_COMM_WORLD), "MPI_Send");
        }
#endif
}

// root's `bytes` to every rank
static void dist_broadcast(void* data, size_t bytes) {
#ifdef USE_MPI
    for (size_t at = 0; dist.ranks > 1 && at < bytes; at += MPI_CHUNK) {
        int n = (int)(bytes - at < (size_t)MPI_CHUNK ? bytes - at : MPI_CHUNK);
        mpi_check(MPI_Bcast((char*)data + at, n, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
    }
#else
    (void)data;
    (void)bytes;
#endif
}

// The first rank whose `bytes` differ from rank 0's (by their checksum, common.h), or -1 when all agree.
// Every rank gets the same answer, so every rank can stop on it.
static int dist_first_differing(const void* data, size_t bytes) {
    if (dist.ranks == 1) return -1;
#ifdef USE_MPI
    Checksum sum = checksum_start();
    checksum_add(&sum, data, bytes);
    uint64_t h = checksum_end(sum);
    uint64_t* all = (uint64_t*)xmalloc(sizeof(uint64_t) * dist.ranks);
    mpi_check(MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD), "MPI_Allgather");
    int first = -1;
    for (int r = dist.ranks - 1; r > 0; r--)
        if (all[r] != all[0]) first = r;
    free(all);
    return first;
#else
    return -1;
#endif
}

// ----------------------------------------------------------------------------------------------------
// buffers on the run's device: NCCL for the GPU where it is built in, else MPI (GPU buffers through the host)

#if defined(__CUDACC__) && defined(USE_MPI) && !defined(DIST_NCCL)
// without NCCL a GPU buffer goes through the host for MPI (slow, but every build can run on several GPUs)
static float* dist_staging(size_t n) {
    static float* host = NULL;
    static size_t capacity = 0;
    if (n > capacity) {
        free(host);
        host = (float*)xmalloc(n * sizeof(float));
        capacity = n;
    }
    return host;
}
#endif

// x[i] = Σ over ranks of x[i], in place, on every rank (the gradients)
static void dist_sum(Device d, float* x, size_t n) {
#ifdef DIST_NCCL
    if (d == DEV_CUDA && dist.nccl_ready) {
        nccl_check(ncclAllReduce(x, x, n, ncclFloat, ncclSum, dist.nccl, cudaStreamPerThread), "ncclAllReduce");
        return;
    }
#endif
    if (dist.ranks == 1) return;
#ifdef USE_MPI
    float* host = x;
#ifndef DIST_NCCL
#ifdef __CUDACC__
    if (d == DEV_CUDA) copy_to_host(d, host = dist_staging(n), x, n * sizeof(float));
#endif
#endif
    for (size_t at = 0; at < n; at += MPI_CHUNK) {
        int count = (int)(n - at < (size_t)MPI_CHUNK ? n - at : MPI_CHUNK);
        mpi_check(MPI_Allreduce(MPI_IN_PLACE, host + at, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    }
    if (host != x) copy_to_device(d, x, host, n * sizeof(float));
#else
    (void)d;
    (void)x;
#endif
}

// every rank's `count` floats of send, in rank order, into recv (ranks·count floats) on every rank
static void dist_allgather(Device d, const float* send, float* recv, size_t count) {
#ifdef DIST_NCCL
    if (d == DEV_CUDA && dist.nccl_ready) {
        nccl_check(ncclAllGather(send, recv, count, ncclFloat, dist.nccl, cudaStreamPerThread), "ncclAllGather");
        return;
    }
#endif
    if (dist.ranks == 1) {
        device_copy(d, recv, send, count * sizeof(float));
        return;
    }
#ifdef USE_MPI
    const float* host_send = send;
    float* host_recv = recv;
#ifndef DIST_NCCL
#ifdef __CUDACC__
    if (d == DEV_CUDA) {
        host_recv = dist_staging((dist.ranks + 1) * count);
        copy_to_host(d, host_recv + dist.ranks * count, send, count * sizeof(float));
        host_send = host_recv + dist.ranks * count;
    }
#endif
#endif
    if (count > (size_t)MPI_CHUNK) die("dist_allgather: %zu floats per rank, more than one MPI call takes", count);
    mpi_check(MPI_Allgather(host_send, (int)count, MPI_FLOAT, host_recv, (int)count, MPI_FLOAT, MPI_COMM_WORLD),
              "MPI_Allgather");
    if (host_recv != recv) copy_to_device(d, recv, host_recv, dist.ranks * count * sizeof(float));
#else
    (void)d;
    (void)send;
    (void)recv;
    (void)count;
#endif
}
