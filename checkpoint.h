// checkpoint.h: model files and training checkpoints, written atomically (a temp file, then rename).
// A model file is llm.c's (gpt2_124M.bin): a header of 256 int32 ([0] 20240326, [1] 3 = fp32, [2] max T,
// [3] V, [4] layers, [5] heads, [6] channels, [7] padded V), then every parameter in llm.c's order.
// A checkpoint is a model file followed by the training state: a second 256-int32 header ([0] 20261123,
// [1] version 2, [2] sizeof(TrainState), [3] sizeof of the run's settings, [4] sizeof(OptimizerConfig),
// [5..6] the checksum of the model part, [7..8] that of the state after this header), the TrainState, the
// run's settings (with a run of N ranks, its --batch is the global batch, N × each rank's), the optimizer
// settings, then the optimizer's m and v, whole, in the parameters' layout (a run of several ranks gathers every
// rank's share first: any number of ranks resumes it). llm.c reads the front part as a model and ignores the
// rest, so a checkpoint is also an llm.c model file. Every read of a model file checks the
// sizes against the file's length and, in a checkpoint, both checksums, before anything is allocated or loaded;
// parameters and moments must be finite.
// Flow: training loop -> checkpoint_save every N steps -> checkpoint_load on --resume.
#pragma once
#include <unistd.h>
#include "optim.h"

#define MODEL_MAGIC 20240326
#define MODEL_VERSION_FP32 3
#define MODEL_VERSION_BF16 5
#define STATE_MAGIC 20261123
#define STATE_VERSION 2  // 2: with checksums

// everything a resumed run needs besides the parameters and the optimizer's moments
struct TrainState {
    int64_t step;          // optimizer steps done
    int64_t opt_t;         // the optimizer's step counter (AdamW's bias correction)
    uint64_t rng_state;    // the run's Rng (sampling)
    int64_t data_epoch, data_shard, data_offset;  // the training loader's position
    double train_seconds;  // training time so far (evaluation excluded)
    double tokens;         // training tokens seen so far
    float best_val_loss;   // best validation loss so far (INFINITY before the first)
    float last_val_loss;
};

// ----------------------------------------------------------------------------------------------------
// atomic files: everything goes to "<path>.tmp", which is renamed over <path> only once complete and flushed

struct AtomicFile {
    FILE* f;
    char path[1024], tmp[1040];
    bool ok;       // false once any write failed
    Checksum sum;  // of everything written since atomic_open (the model part of a checkpoint)
};

static int atomic_open(AtomicFile* af, const char* path, char* err) {
    snprintf(af->path, sizeof(af->path), "%s", path);
    snprintf(af->tmp, sizeof(af->tmp), "%s.tmp", path);
    af->f = fopen(af->tmp, "wb");
    af->ok = af->f != NULL;
    af->sum = checksum_start();
    if (!af->f) return fail(err, "%s: cannot write (%s)", af->tmp, strerror(errno));
    return 0;
}

static void atomic_write(AtomicFile* af, const void* data, size_t bytes) {
    if (af->ok && bytes > 0 && fwrite(data, 1, bytes, af->f) != bytes) af->ok = false;
    checksum_add(&af->sum, data, bytes);
}

static int atomic_commit(AtomicFile* af, char* err) {
    if (fflush(af->f) != 0 || fsync(fileno(af->f)) != 0) af->ok = false;
    if (fclose(af->f) != 0) af->ok = false;
    if (!af->ok) {
        remove(af->tmp);
        return fail(err, "%s: write failed (disk full?); the previous file is kept", af->path);
    }
    if (rename(af->tmp, af->path) != 0) return fail(err, "%s: cannot rename into place (%s)", af->path, strerror(errno));
    return 0;
}

// ----------------------------------------------------------------------------------------------------
// model files (llm.c's format)

static void model_header(const GPT2Config* c, int version, int header[256]) {
    memset(header, 0, 256 * sizeof(int));
    header[0] = MODEL_MAGIC;
    header[1] = version;
    header[2] = c->max_seq_len;
    header[3] = c->vocab_size;
    header[4] = c->num_layers;
    header[5] = c->num_heads;
    header[6] = c->channels;
    header[7] = c->padded_vocab_size;
}

// the parameters, copied to the host (fp32)
static float* model_params_to_host(const GPT2* m) {
    float* host = (float*)xmalloc(m->num_parameters * sizeof(float));
    copy_to_host(m->device, host, m->params[0].data, m->num_parameters * sizeof(float));
    return host;
}

static void write_model_part(AtomicFile* af, const GPT2* m) {
    int header[256];
    model_header(&m->config, MODEL_VERSION_FP32, header);
    atomic_write(af, header, sizeof(header));
    float* host = model_params_to_host(m);
    atomic_write(af, host, m->num_parameters * sizeof(float));
    free(host);
}

static int model_save(const GPT2* m, const char* path, char* err) {
    AtomicFile af;
    if (atomic_open(&af, path, err)) return -1;
    write_model_part(&af, m);
    return atomic_commit(&af, err);
}

// The checksums of a checkpoint's two parts, streamed from the file: the model part [0, model_bytes) and the
// state after the state header, to the end. 0 when both match the header's, or -1 naming the part that differs.
static int checkpoint_verify(FILE* f, const char* path, long model_bytes, const int state_header[256], char* err) {
    const size_t chunk = 1 << 20;
    uint8_t* buf = (uint8_t*)xmalloc(chunk);
    Checksum parts[2] = {checksum_start(), checksum_start()};
    long starts[2] = {0, model_bytes + 256 * (long)sizeof(int)};
    int rc = 0;
    for (int part = 0; part < 2 && rc == 0; part++) {
        if (fseek(f, starts[part], SEEK_SET) != 0) rc = fail(err, "%s: cannot seek", path);
        long left = part == 0 ? model_bytes : -1;  // the state runs to the end of the file
        while (rc == 0 && left != 0) {
            size_t want = left < 0 || (size_t)left > chunk ? chunk : (size_t)left;
            size_t got = fread(buf, 1, want, f);
            checksum_add(&parts[part], buf, got);
            if (left > 0) left -= (long)got;
            if (got < want) {
                if (left > 0) rc = fail(err, "%s: read error", path);
                break;
            }
        }
    }
    free(buf);
    const char* names[2] = {"the model part (header and parameters)", "the training state"};
    for (int part = 0; part < 2 && rc == 0; part++) {
        uint64_t want = (uint32_t)state_header[5 + 2 * part] | (uint64_t)(uint32_t)state_header[6 + 2 * part] << 32;
        if (checksum_end(parts[part]) != want)
            rc = fail(err, "%s: checksum mismatch in %s: the file is corrupted", path, names[part]);
    }
    return rc;
}

// Reads a model file's header: the config, and where the parameters start. Checks magic, version and sizes
// against the file's length (in 64 bits, before anyone allocates a model for them); what follows the parameters
// must be nothing (an llm.c model file) or a training state of exactly its size with matching checksums (a
// checkpoint: *has_state = 1, the file left at the parameters). has_state may be NULL. verify = false skips the
// checksums (a whole read of the file), for a file whose checksums were checked a moment ago.
static int model_read_header(FILE* f, const char* path, GPT2Config* cfg, int* version, char* err,
                             int* has_state = NULL, bool verify = true) {
    struct stat fs;
    if (fstat(fileno(f), &fs) != 0 || !S_ISREG(fs.st_mode)) return fail(err, "%s: not a regular file", path);
    int header[256];
    if (fread(header, sizeof(int), 256, f) != 256)
        return fail(err, "%s: %lld bytes, too short for a model header (1024 bytes)", path, (long long)fs.st_size);
    if (header[0] != MODEL_MAGIC)
        return fail(err, "%s: bad magic %d (expected %d, an llm.c model file or muongpt checkpoint)", path, header[0],
                    MODEL_MAGIC);
    if (header[1] != MODEL_VERSION_FP32 && header[1] != MODEL_VERSION_BF16)
        return fail(err, "%s: model version %d not supported (expected 3 = fp32 or 5 = bf16)", path, header[1]);
    *version = header[1];
    cfg->max_seq_len = header[2];
    cfg->vocab_size = header[3];
    cfg->num_layers = header[4];
    cfg->num_heads = header[5];
    cfg->channels = header[6];
    cfg->padded_vocab_size = header[7];
    char inner[ERR_LEN];
    if (gpt2_config_check(cfg, inner)) return fail(err, "%s: %s", path, inner);
    // the parameters the header promises must be in the file
    long long held = (long long)fs.st_size - (long long)sizeof(header);
    long long need = (long long)gpt2_num_parameters(cfg) * (*version == MODEL_VERSION_FP32 ? 4 : 2);
    if (held < need)
        return fail(err, "%s: truncated: the header describes %lld parameter bytes, the file holds %lld", path, need, held);
    if (has_state) *has_state = 0;
    if (held == need) return 0;
    // more after the parameters: it must be a whole training state
    long model_bytes = (long)(sizeof(header) + need);
    int state[256];
    if (*version != MODEL_VERSION_FP32 || held - need < (long long)sizeof(state) || fseek(f, model_bytes, SEEK_SET) != 0 ||
        fread(state, sizeof(int), 256, f) != 256 || state[0] != STATE_MAGIC)
        return fail(err, "%s: %lld bytes after the parameters that are not a training state (expected an llm.c model "
                    "file or a muongpt checkpoint)", path, held - need);
    if (state[1] != STATE_VERSION)
        return fail(err, "%s: training state version %d (expected %d; written by a different muongpt)", path, state[1],
                    STATE_VERSION);
    long long state_bytes = (long long)sizeof(state) + (long long)state[2] + state[3] + state[4] + 8 * gpt2_num_parameters(cfg);
    if (state[2] < 0 || state[3] < 0 || state[4] < 0 || held - need != state_bytes)
        return fail(err, "%s: the training state is %lld bytes, its header describes %lld (%s)", path, held - need,
                    state_bytes, held - need < state_bytes ? "truncated" : "extra bytes at the end");
    if (verify && checkpoint_verify(f, path, model_bytes, state, err)) return -1;
    if (fseek(f, (long)sizeof(header), SEEK_SET) != 0) return fail(err, "%s: cannot seek", path);
    if (has_state) *has_state = 1;
    return 0;
}

// The first non-finite value of n floats, or -1 when all are finite.
static long long first_non_finite(const float* x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return (long long)i;
    return -1;
}

// Reads num_parameters values (fp32, or bf16 widened: numerics.h's bf16_to_float) into the model.
static int model_read_params(FILE* f, const char* path, GPT2* m, int version, char* err) {
    size_t n = m->num_parameters;
    float* host = (float*)xmalloc(n * sizeof(float));
    size_t got;
    if (version == MODEL_VERSION_FP32) {
        got = fread(host, sizeof(float), n, f);
    } else {
        uint16_t* half = (uint16_t*)xmalloc(n * sizeof(uint16_t));
        got = fread(half, sizeof(uint16_t), n, f);
        for (size_t i = 0; i < got; i++) host[i] = bf16_to_float(half[i]);
        free(half);
    }
    if (got != n) {
        free(host);
        return fail(err, "%s: truncated: %zu of %zu parameters present", path, got, n);
    }
    long long bad = first_non_finite(host, n);
    if (bad >= 0) {  // a diverged or corrupted model: nothing sensible can be sampled or trained from it
        int t = 0;
        while (t + 1 < NUM_PARAM_TENSORS && (size_t)bad >= (size_t)(m->params[t + 1].data - m->params[0].data)) t++;
        float value = host[bad];
        free(host);
        return fail(err, "%s: parameter %lld (in %s) is %s: the file holds a diverged or corrupted model", path, bad,
                    param_tensor_names[t], isnan(value) ? "NaN" : "infinite");
    }
    copy_to_device(m->device, m->params[0].data, host, n * sizeof(float));
    free(host);
    return 0;
}

// ----------------------------------------------------------------------------------------------------
// checkpoints: the model file, then the training state

// The file: the model part, then the state header and the state; `host` is the whole optimizer state.
static int checkpoint_write(const char* path, const GPT2* m, const Optimizer* opt, const float* host,
                            const TrainState* st, const void* run_config, size_t run_config_size, char* err) {
    AtomicFile af;
    if (atomic_open(&af, path, err)) return -1;
    write_model_part(&af, m);
    uint64_t model_sum = checksum_end(af.sum);
    size_t n = opt->num_parameters;
    Checksum state = checksum_start();  // the header holds the state's checksum, so it is summed first
    checksum_add(&state, st, sizeof(*st));
    checksum_add(&state, run_config, run_config_size);
    checksum_add(&state, &opt->cfg, sizeof(opt->cfg));
    checksum_add(&state, host, 2 * n * sizeof(float));
    uint64_t state_sum = checksum_end(state);
    int header[256] = {0};
    header[0] = STATE_MAGIC;
    header[1] = STATE_VERSION;
    header[2] = (int)sizeof(TrainState);
    header[3] = (int)run_config_size;
    header[4] = (int)sizeof(OptimizerConfig);
    header[5] = (int)(uint32_t)model_sum;
    header[6] = (int)(uint32_t)(model_sum >> 32);
    header[7] = (int)(uint32_t)state_sum;
    header[8] = (int)(uint32_t)(state_sum >> 32);
    atomic_write(&af, header, sizeof(header));
    atomic_write(&af, st, sizeof(*st));
    atomic_write(&af, run_config, run_config_size);
    atomic_write(&af, &opt->cfg, sizeof(opt->cfg));
    atomic_write(&af, host, 2 * n * sizeof(float));
    return atomic_commit(&af, err);
}

// The whole optimizer state in the parameters' layout, m then v (2 × num_parameters floats, host), on rank 0:
// each rank's packed pieces gathered (partition.h); every rank calls it, the others get NULL.
static float* optimizer_state_gather(const Optimizer* opt) {
    size_t n = opt->num_parameters, mine = opt->part.floats[opt->part.rank];
    float* packed = (float*)xmalloc(2 * mine * sizeof(float));
    copy_to_host(opt->device, packed, opt->m, mine * sizeof(float));
    copy_to_host(opt->device, packed + mine, opt->v, mine * sizeof(float));
    float* whole = dist_root() ? (float*)xcalloc(2 * n, sizeof(float)) : NULL;
    partition_gather_state(&opt->part, packed, whole);
    partition_gather_state(&opt->part, packed + mine, whole ? whole + n : NULL);
    free(packed);
    return whole;
}

// Every rank calls it; rank 0 writes the file (the parameters are the same on every rank), and every rank
// returns its outcome.
static int checkpoint_save(const char* path, const GPT2* m, const Optimizer* opt, const TrainState* st,
                           const void* run_config, size_t run_config_size, char* err) {
    float* host = optimizer_state_gather(opt);
    int rc = 0;
    if (dist_root()) {
        rc = checkpoint_write(path, m, opt, host, st, run_config, run_config_size, err);
        free(host);
    }
    dist_broadcast(&rc, sizeof(rc));
    if (rc) dist_broadcast(err, ERR_LEN);
    return rc;
}

// Opens a checkpoint at its training-state header (read into header): its sizes and checksums checked, and the
// layout this build writes.
static FILE* checkpoint_open_state(const char* path, GPT2Config* cfg, int header[256], size_t run_config_size,
                                   char* err) {
    FILE* f = fopen(path, "rb");
    if (!f) {
        fail(err, "%s: cannot open checkpoint (%s)", path, strerror(errno));
        return NULL;
    }
    int version = 0, has_state = 0;
    int rc = model_read_header(f, path, cfg, &version, err, &has_state);
    if (rc == 0 && !has_state) rc = fail(err, "%s: a model file without training state (not a checkpoint)", path);
    if (rc == 0 && fseek(f, (long)(gpt2_num_parameters(cfg) * sizeof(float)), SEEK_CUR) != 0)
        rc = fail(err, "%s: cannot seek", path);
    if (rc == 0 && fread(header, sizeof(int), 256, f) != 256) rc = fail(err, "%s: truncated training state", path);
    if (rc == 0 && (header[2] != (int)sizeof(TrainState) || header[3] != (int)run_config_size ||
                    header[4] != (int)sizeof(OptimizerConfig)))
        rc = fail(err, "%s: written by a different build of muongpt (state layout differs)", path);
    if (rc != 0) {
        fclose(f);
        return NULL;
    }
    return f;
}

// The training state's own numbers must make sense before a run continues from them.
static int train_state_check(const TrainState* st, const char* path, char* err) {
    if (st->step < 0 || st->opt_t < 0 || st->opt_t > (int64_t)1 << 40 || st->data_epoch < 0 || st->data_shard < 0 ||
        st->data_offset < 0 || !(st->tokens >= 0 && st->tokens < 1e300) ||
        !(st->train_seconds >= 0 && st->train_seconds < 1e300) || isnan(st->best_val_loss) || isnan(st->last_val_loss))
        return fail(err, "%s: training state out of range (step %lld, optimizer step %lld, data position %lld/%lld/%lld, "
                    "tokens %g, seconds %g)", path, (long long)st->step, (long long)st->opt_t, (long long)st->data_epoch,
                    (long long)st->data_shard, (long long)st->data_offset, st->tokens, st->train_seconds);
    return 0;
}

// First half of a resume: the model's config, the run's settings and the optimizer's settings, so the
// caller can check them and build the model and optimizer before checkpoint_load fills them.
static int checkpoint_peek(const char* path, GPT2Config* cfg, void* run_config, size_t run_config_size,
                           OptimizerConfig* oc, TrainState* st, char* err) {
    int header[256];
    FILE* f = checkpoint_open_state(path, cfg, header, run_config_size, err);
    if (!f) return -1;
    int rc = 0;
    if (fread(st, sizeof(*st), 1, f) != 1 || fread(run_config, run_config_size, 1, f) != 1 || fread(oc, sizeof(*oc), 1, f) != 1)
        rc = fail(err, "%s: truncated training state", path);
    if (rc == 0) rc = train_state_check(st, path, err);
    fclose(f);
    return rc;
}

// Second half: parameters, optimizer moments and state into a model and optimizer built from the peeked
// configs. Every rank of a run reads the file itself (it must be where each rank can read it). verify = false:
// checkpoint_peek has just checked the checksums (a resume reads the file once more, not twice).
static int checkpoint_load(const char* path, GPT2* m, Optimizer* opt, TrainState* st, char* err, bool verify = true) {
    FILE* f = fopen(path, "rb");
    if (!f) return fail(err, "%s: cannot open checkpoint (%s)", path, strerror(errno));
    GPT2Config cfg;
    int version = 0, has_state = 0, header[256];
    int rc = model_read_header(f, path, &cfg, &version, err, &has_state, verify);
    if (rc == 0 && !has_state) rc = fail(err, "%s: a model file without training state (not a checkpoint)", path);
    if (rc == 0 && memcmp(&cfg, &m->config, sizeof(cfg)) != 0) rc = fail(err, "%s: model config differs", path);
    if (rc == 0) rc = model_read_params(f, path, m, version, err);
    if (rc == 0 && (fread(header, sizeof(int), 256, f) != 256 || fread(st, sizeof(*st), 1, f) != 1 ||
                    fseek(f, (long)header[3] + header[4], SEEK_CUR) != 0))
        rc = fail(err, "%s: truncated training state", path);
    if (rc == 0) rc = train_state_check(st, path, err);
    size_t n = opt->num_parameters;
    float* host = rc == 0 ? (float*)xmalloc(2 * n * sizeof(float)) : NULL;
    if (rc == 0 && fread(host, sizeof(float), 2 * n, f) != 2 * n)
        rc = fail(err, "%s: truncated optimizer state", path);
    long long bad = rc == 0 ? first_non_finite(host, 2 * n) : -1;
    if (bad >= 0) rc = fail(err, "%s: optimizer moment %lld is not finite: the file holds a diverged or corrupted state", path, bad);
    if (rc == 0) {  // this rank's pieces of the whole state (all of it with one rank)
        size_t mine = opt->part.floats[opt->part.rank];
        float* packed = (float*)xmalloc(2 * mine * sizeof(float));
        partition_take_own(&opt->part, host, packed);
        partition_take_own(&opt->part, host + n, packed + mine);
        copy_to_device(opt->device, opt->m, packed, mine * sizeof(float));
        copy_to_device(opt->device, opt->v, packed + mine, mine * sizeof(float));
        free(packed);
        opt->t = (int)st->opt_t;
    }
    free(host);
    fclose(f);
    return rc;
}
