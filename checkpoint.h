// checkpoint.h: model files and training checkpoints, written atomically (a temp file, then rename).
// A model file is llm.c's (gpt2_124M.bin): a header of 256 int32 ([0] 20240326, [1] 3 = fp32, [2] max T,
// [3] V, [4] layers, [5] heads, [6] channels, [7] padded V), then every parameter in llm.c's order.
// A checkpoint is a model file followed by the training state: a second 256-int32 header ([0] 20261123,
// [1] version 1, [2] sizeof(TrainState), [3] sizeof of the run's settings, [4] sizeof(OptimizerConfig)),
// the TrainState, the run's settings, the optimizer settings, then the optimizer's m and v. llm.c reads the
// front part as a model and ignores the rest, so a checkpoint is also an llm.c model file.
// Flow: training loop -> checkpoint_save every N steps -> checkpoint_load on --resume.
#pragma once
#include <unistd.h>
#include "optim.h"

#define MODEL_MAGIC 20240326
#define MODEL_VERSION_FP32 3
#define MODEL_VERSION_BF16 5
#define STATE_MAGIC 20261123
#define STATE_VERSION 1

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
    bool ok;  // false once any write failed
};

static int atomic_open(AtomicFile* af, const char* path, char* err) {
    snprintf(af->path, sizeof(af->path), "%s", path);
    snprintf(af->tmp, sizeof(af->tmp), "%s.tmp", path);
    af->f = fopen(af->tmp, "wb");
    af->ok = af->f != NULL;
    if (!af->f) return fail(err, "%s: cannot write (%s)", af->tmp, strerror(errno));
    return 0;
}

static void atomic_write(AtomicFile* af, const void* data, size_t bytes) {
    if (af->ok && bytes > 0 && fwrite(data, 1, bytes, af->f) != bytes) af->ok = false;
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

// Reads a model file's header: the config, and where the parameters start. Checks magic, version and sizes
// against the file's length.
static int model_read_header(FILE* f, const char* path, GPT2Config* cfg, int* version, char* err) {
    int header[256];
    if (fread(header, sizeof(int), 256, f) != 256)
        return fail(err, "%s: too short for a model header (256 int32)", path);
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
    // the parameters the header promises must be in the file, before anyone allocates a model for them
    long here = ftell(f);
    if (here < 0 || fseek(f, 0, SEEK_END) != 0) return fail(err, "%s: cannot seek (not a regular file?)", path);
    long end = ftell(f);
    if (fseek(f, here, SEEK_SET) != 0) return fail(err, "%s: cannot seek (not a regular file?)", path);
    size_t need = gpt2_num_parameters(cfg) * (*version == MODEL_VERSION_FP32 ? 4 : 2);
    if ((size_t)(end - here) < need)
        return fail(err, "%s: truncated: the header describes %zu parameter bytes, the file holds %ld", path, need,
                    end - here);
    return 0;
}

// bf16 is the top half of an fp32: widening it is a shift
static float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// Reads num_parameters values (fp32, or bf16 widened) into the model.
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
    copy_to_device(m->device, m->params[0].data, host, n * sizeof(float));
    free(host);
    return 0;
}

// ----------------------------------------------------------------------------------------------------
// checkpoints: the model file, then the training state

static int checkpoint_save(const char* path, const GPT2* m, const Optimizer* opt, const TrainState* st,
                           const void* run_config, size_t run_config_size, char* err) {
    AtomicFile af;
    if (atomic_open(&af, path, err)) return -1;
    write_model_part(&af, m);
    int header[256] = {0};
    header[0] = STATE_MAGIC;
    header[1] = STATE_VERSION;
    header[2] = (int)sizeof(TrainState);
    header[3] = (int)run_config_size;
    header[4] = (int)sizeof(OptimizerConfig);
    atomic_write(&af, header, sizeof(header));
    atomic_write(&af, st, sizeof(*st));
    atomic_write(&af, run_config, run_config_size);
    atomic_write(&af, &opt->cfg, sizeof(opt->cfg));
    size_t n = opt->num_parameters;
    float* host = (float*)xmalloc(2 * n * sizeof(float));
    copy_to_host(opt->device, host, opt->m, n * sizeof(float));
    copy_to_host(opt->device, host + n, opt->v, n * sizeof(float));
    atomic_write(&af, host, 2 * n * sizeof(float));
    free(host);
    return atomic_commit(&af, err);
}

// First half of a resume: the model's config, the run's settings and the optimizer's settings, so the
// caller can build the model and optimizer before checkpoint_load fills them.
static int checkpoint_peek(const char* path, GPT2Config* cfg, void* run_config, size_t run_config_size,
                           OptimizerConfig* oc, char* err) {
    FILE* f = fopen(path, "rb");
    if (!f) return fail(err, "%s: cannot open checkpoint (%s)", path, strerror(errno));
    int version;
    int rc = model_read_header(f, path, cfg, &version, err);
    if (rc == 0 && version != MODEL_VERSION_FP32) rc = fail(err, "%s: a bf16 model file is not a checkpoint", path);
    int header[256];
    TrainState st;
    if (rc == 0 && fseek(f, (long)(gpt2_num_parameters(cfg) * sizeof(float)), SEEK_CUR) != 0)
        rc = fail(err, "%s: truncated parameters", path);
    if (rc == 0 && fread(header, sizeof(int), 256, f) != 256)
        rc = fail(err, "%s: a model file without training state (not a checkpoint)", path);
    if (rc == 0 && (header[0] != STATE_MAGIC || header[1] != STATE_VERSION))
        rc = fail(err, "%s: bad training-state header (magic %d version %d, expected %d version %d)", path, header[0],
                  header[1], STATE_MAGIC, STATE_VERSION);
    if (rc == 0 && (header[2] != (int)sizeof(TrainState) || header[3] != (int)run_config_size ||
                    header[4] != (int)sizeof(OptimizerConfig)))
        rc = fail(err, "%s: written by a different build of muongpt (state layout differs)", path);
    if (rc == 0 && (fread(&st, sizeof(st), 1, f) != 1 || fread(run_config, run_config_size, 1, f) != 1 ||
                    fread(oc, sizeof(*oc), 1, f) != 1))
        rc = fail(err, "%s: truncated training state", path);
    fclose(f);
    return rc;
}

// Second half: parameters, optimizer moments and state into a model and optimizer built from the peeked
// configs.
static int checkpoint_load(const char* path, GPT2* m, Optimizer* opt, TrainState* st, char* err) {
    FILE* f = fopen(path, "rb");
    if (!f) return fail(err, "%s: cannot open checkpoint (%s)", path, strerror(errno));
    GPT2Config cfg;
    int version, header[256];
    int rc = model_read_header(f, path, &cfg, &version, err);
    if (rc == 0 && memcmp(&cfg, &m->config, sizeof(cfg)) != 0) rc = fail(err, "%s: model config differs", path);
    if (rc == 0) rc = model_read_params(f, path, m, version, err);
    size_t skip = 0;
    if (rc == 0 && fread(header, sizeof(int), 256, f) != 256) rc = fail(err, "%s: truncated training state", path);
    if (rc == 0) skip = (size_t)header[3] + header[4];
    if (rc == 0 && (fread(st, sizeof(*st), 1, f) != 1 || fseek(f, (long)skip, SEEK_CUR) != 0))
        rc = fail(err, "%s: truncated training state", path);
    size_t n = opt->num_parameters;
    float* host = rc == 0 ? (float*)xmalloc(2 * n * sizeof(float)) : NULL;
    if (rc == 0 && fread(host, sizeof(float), 2 * n, f) != 2 * n)
        rc = fail(err, "%s: truncated optimizer state", path);
    if (rc == 0) {
        copy_to_device(opt->device, opt->m, host, n * sizeof(float));
        copy_to_device(opt->device, opt->v, host + n, n * sizeof(float));
        opt->t = (int)st->opt_t;
    }
    free(host);
    fclose(f);
    return rc;
}
