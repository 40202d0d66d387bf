// data/loader.h: reads llm.c token shards and hands out (B, T) batches of inputs and next-token targets.
// Flow: data/prepare.h writes shards -> [loader] -> inputs/targets -> model forward -> loss.
//
// Shard format (llm.c): a header of 256 int32 ([0] magic 20240520, [1] version 1, [2] token count), then
// that many uint16 token ids; the file is exactly 1024 + 2*count bytes. Every header is checked at init
// (magic, version, size against the file length) and every token of a shard when that shard is loaded
// (id >= 50257 is an error naming the file and the position); one shard is in memory at a time.
// Batches, as llm.c: consecutive windows of B*T+1 tokens stepping by B*T within a shard; inputs are the
// first B*T tokens, targets the same window shifted by one. The tail of a shard too short for a window is
// skipped. With N ranks (dist.h) the windows are those of one loader with N·B rows, and rank r takes rows
// r·B .. r·B + B − 1 of each: together the ranks read exactly what one process with N× the batch reads, and
// the position is the same on every rank. Shards are walked in a per-epoch order: sorted by name, or (shuffle) a permutation drawn from
// the seed and the epoch, so a run is reproducible and a checkpoint can resume it exactly from
// (epoch, shard_index, offset).
#pragma once
#include <glob.h>
#include <sys/stat.h>

#include "common.h"
#include "data/tokenizer.h"

#define SHARD_MAGIC 20240520
#define SHARD_VERSION 1
#define SHARD_HEADER_INTS 256
#define SHARD_HEADER_BYTES (SHARD_HEADER_INTS * 4)

// where the next batch comes from; plain data, saved in checkpoints
struct DataPosition {
    int64_t epoch;        // passes over all shards so far
    int64_t shard_index;  // index into this epoch's shard order (not a file index)
    int64_t offset;       // token offset of the next window in that shard
};

struct DataLoader {
    int B, T;                 // batch size (this rank's rows), sequence length
    int rank, ranks;          // this rank's slice of every global batch of ranks·B rows
    uint64_t seed;            // shard order of each epoch, when shuffling
    bool shuffle;
    int num_shards;
    char** paths;             // (num_shards) shard files, sorted by name
    int64_t* shard_tokens;    // (num_shards) tokens in each shard
    int64_t total_tokens;     // over all shards
    int* order;               // (num_shards) file index of each shard_index in epoch order_epoch
    int64_t order_epoch;
    DataPosition pos;         // the next batch
    int loaded;               // file index whose tokens are in `tokens`; -1 when none
    uint16_t* tokens;         // (largest shard's count) the loaded shard
    int* inputs;              // (B, T) host memory
    int* targets;             // (B, T) inputs shifted by one token
};

// reads and checks a shard's header against the file's length; the token count in *count
static int shard_read_header(const char* path, int64_t* count, char* err) {
    FILE* f = fopen(path, "rb");
    if (!f) return fail(err, "%s: cannot open (%s)", path, strerror(errno));
    int32_t header[SHARD_HEADER_INTS];
    size_t got = fread(header, 1, SHARD_HEADER_BYTES, f);
    struct stat st;
    int stat_failed = fstat(fileno(f), &st);
    fclose(f);
    if (stat_failed) return fail(err, "%s: cannot stat (%s)", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return fail(err, "%s: not a regular file (expected an llm.c token shard)", path);
    int64_t bytes = (int64_t)st.st_size;
    if (got < SHARD_HEADER_BYTES)
        return fail(err, "%s: %lld bytes, shorter than the %d-byte header of an llm.c token shard", path, (long long)bytes, SHARD_HEADER_BYTES);
    if (header[0] != SHARD_MAGIC) return fail(err, "%s: bad magic %d (expected %d, an llm.c token shard)", path, header[0], SHARD_MAGIC);
    if (header[1] != SHARD_VERSION) return fail(err, "%s: version %d (expected %d, uint16 tokens)", path, header[1], SHARD_VERSION);
    int64_t n = header[2], held = (bytes - SHARD_HEADER_BYTES) / 2;
    if (n < 0) return fail(err, "%s: header says %lld tokens", path, (long long)n);
    if ((bytes - SHARD_HEADER_BYTES) % 2 != 0)
        return fail(err, "%s: odd length %lld bytes (expected 1024 + 2 x token count): a truncated or corrupted shard", path, (long long)bytes);
    if (n > held)
        return fail(err, "%s: header says %lld tokens but the file holds only %lld (truncated)", path, (long long)n, (long long)held);
    if (n < held)
        return fail(err, "%s: header says %lld tokens but the file holds %lld (extra bytes at the end)", path, (long long)n, (long long)held);
    *count = n;
    return 0;
}

// reads a whole shard into tokens (room for count) and checks every id against the vocabulary
static int shard_read_tokens(const char* path, int64_t count, uint16_t* tokens, char* err) {
    int64_t check = 0;
    if (shard_read_header(path, &check, err)) return -1;
    if (check != count) return fail(err, "%s: changed on disk (now %lld tokens, was %lld)", path, (long long)check, (long long)count);
    FILE* f = fopen(path, "rb");
    if (!f) return fail(err, "%s: cannot open (%s)", path, strerror(errno));
    int ok = fseek(f, SHARD_HEADER_BYTES, SEEK_SET) == 0 && fread(tokens, 2, (size_t)count, f) == (size_t)count;
    fclose(f);
    if (!ok) return fail(err, "%s: read error", path);
    for (int64_t i = 0; i < count; i++)
        if (tokens[i] >= GPT2_VOCAB_SIZE)
            return fail(err, "%s: token %d at position %lld (byte %lld) is outside the vocabulary (>= %d)", path,
                        tokens[i], (long long)i, (long long)(SHARD_HEADER_BYTES + 2 * i), GPT2_VOCAB_SIZE);
    return 0;
}

static void dataloader_free(DataLoader* dl) {
    for (int i = 0; dl->paths && i < dl->num_shards; i++) free(dl->paths[i]);
    free(dl->paths);
    free(dl->shard_tokens);
    free(dl->order);
    free(dl->tokens);
    free(dl->inputs);
    free(dl->targets);
    memset(dl, 0, sizeof *dl);
}

// the file order of an epoch: by name, or a Fisher-Yates permutation from (seed, epoch)
static void dataloader_order(DataLoader* dl, int64_t epoch) {
    for (int i = 0; i < dl->num_shards; i++) dl->order[i] = i;
    if (dl->shuffle) {
        Rng rng = rng_make(dl->seed ^ ((uint64_t)(epoch + 1) * 0xD1B54A32D192ED03ull));
        for (int i = dl->num_shards - 1; i > 0; i--) {
            int j = (int)(rng_u32(&rng) % (uint32_t)(i + 1));
            int t = dl->order[i];
            dl->order[i] = dl->order[j];
            dl->order[j] = t;
        }
    }
    dl->order_epoch = epoch;
}

static int dataloader_load(DataLoader* dl, int file, char* err) {
    if (dl->loaded == file) return 0;
    dl->loaded = -1;
    if (shard_read_tokens(dl->paths[file], dl->shard_tokens[file], dl->tokens, err)) return -1;
    dl->loaded = file;
    return 0;
}

// pattern: a shard path or a glob(3) pattern ("out/data/x_train*.bin"); shards are sorted by name. B: this
// rank's rows, of ranks·B in a global batch.
static int dataloader_init(DataLoader* dl, const char* pattern, int B, int T, uint64_t seed, bool shuffle, char* err,
                           int rank = 0, int ranks = 1) {
    memset(dl, 0, sizeof *dl);
    if (B < 1 || T < 1) return fail(err, "%s: batch size B=%d and sequence length T=%d must be >= 1", pattern, B, T);
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH) {
        if (!strpbrk(pattern, "*?[")) return fail(err, "%s: cannot open (%s)", pattern, strerror(ENOENT));
        return fail(err, "%s: no file matches this pattern", pattern);
    }
    if (rc != 0) return fail(err, "%s: glob failed (error %d)", pattern, rc);
    dl->B = B;
    dl->T = T;
    dl->rank = rank;
    dl->ranks = ranks;
    dl->seed = seed;
    dl->shuffle = shuffle;
    dl->num_shards = (int)g.gl_pathc;
    dl->paths = (char**)xcalloc(dl->num_shards, sizeof(char*));
    dl->shard_tokens = (int64_t*)xcalloc(dl->num_shards, sizeof(int64_t));
    dl->order = (int*)xcalloc(dl->num_shards, sizeof(int));
    for (int i = 0; i < dl->num_shards; i++) dl->paths[i] = strdup(g.gl_pathv[i]);
    globfree(&g);
    int64_t window = (int64_t)ranks * B * T + 1, largest = 0;
    for (int i = 0; i < dl->num_shards; i++) {
        if (shard_read_header(dl->paths[i], &dl->shard_tokens[i], err)) { dataloader_free(dl); return -1; }
        if (dl->shard_tokens[i] < window) {
            fail(err, "%s: shard has %lld tokens, fewer than one batch of B*T+1 = %d*%d+1 = %lld", dl->paths[i],
                 (long long)dl->shard_tokens[i], ranks * B, T, (long long)window);
            dataloader_free(dl);
            return -1;
        }
        dl->total_tokens += dl->shard_tokens[i];
        if (dl->shard_tokens[i] > largest) largest = dl->shard_tokens[i];
    }
    dl->tokens = (uint16_t*)xmalloc((size_t)largest * sizeof(uint16_t));
    dl->inputs = (int*)xmalloc((size_t)B * T * sizeof(int));
    dl->targets = (int*)xmalloc((size_t)B * T * sizeof(int));
    dl->loaded = -1;
    dataloader_order(dl, 0);
    if (dataloader_load(dl, dl->order[0], err)) {  // checks the first shard's tokens now, not at step 1
        dataloader_free(dl);
        return -1;
    }
    return 0;
}

// back to the very first batch (validation: the same batches at every evaluation)
static void dataloader_reset(DataLoader* dl) {
    dl->pos.epoch = dl->pos.shard_index = dl->pos.offset = 0;  // dataloader_next redraws epoch 0's order
}

// fills inputs and targets with this rank's rows of the next window; moves on to the next shard, and the next
// epoch, as needed
static int dataloader_next(DataLoader* dl, char* err) {
    int64_t n = (int64_t)dl->B * dl->T, global = n * dl->ranks;
    DataPosition* p = &dl->pos;
    if (p->epoch != dl->order_epoch) dataloader_order(dl, p->epoch);
    while (p->offset + global + 1 > dl->shard_tokens[dl->order[p->shard_index]]) {  // every shard holds one window
        p->offset = 0;
        if (++p->shard_index == dl->num_shards) {
            p->shard_index = 0;
            dataloader_order(dl, ++p->epoch);
        }
    }
    if (dataloader_load(dl, dl->order[p->shard_index], err)) return -1;
    const uint16_t* window = dl->tokens + p->offset + dl->rank * n;
    for (int64_t i = 0; i < n; i++) {
        dl->inputs[i] = window[i];
        dl->targets[i] = window[i + 1];
    }
    p->offset += global;
    return 0;
}

static DataPosition dataloader_tell(const DataLoader* dl) { return dl->pos; }

// continue from a position that dataloader_tell gave (same shards, same B and T for an exact resume)
static int dataloader_seek(DataLoader* dl, DataPosition pos, char* err) {
    if (pos.epoch < 0 || pos.shard_index < 0 || pos.shard_index >= dl->num_shards)
        return fail(err, "data position: epoch %lld, shard index %lld is outside %d shards (saved with other data?)",
                    (long long)pos.epoch, (long long)pos.shard_index, dl->num_shards);
    dataloader_order(dl, pos.epoch);
    int file = dl->order[pos.shard_index];
    if (pos.offset < 0 || pos.offset > dl->shard_tokens[file])
        return fail(err, "data position: offset %lld is outside %s (%lld tokens; saved with other data?)",
                    (long long)pos.offset, dl->paths[file], (long long)dl->shard_tokens[file]);
    dl->pos = pos;
    return 0;
}

static int64_t dataloader_num_tokens(const DataLoader* dl) { return dl->total_tokens; }
