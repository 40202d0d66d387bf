// data/prepare.h: text files -> llm.c token shards (`./train prepare`), and the cache that lets training
// take a raw .txt path (dataset_from_text). Flow: text -> data/tokenizer.h -> [prepare] -> shards ->
// data/loader.h -> model.
//
// The recipe is llm.c's for tinyshakespeare (dev/data/tinyshakespeare.py): each "\n\n"-separated section
// is a document with <|endoftext|> (50256) before it, encoded as ordinary text with its "\n\n" (all but
// the last); the first 32,768 tokens are the validation split, the rest the training split:
// <out>/<stem>_val.bin and <out>/<stem>_train.bin. For data/tinyshakespeare.txt the two files are
// byte-identical to those llm.c's script makes with tiktoken (tests/test_data.cpp checks their hashes).
// Large inputs stream in bounded memory: the file is read PREPARE_CHUNK_BYTES at a time and encoded a
// section at a time. A section longer than a chunk is cut just before an ASCII whitespace byte that
// follows a printable ASCII byte: no piece of GPT-2's split pattern crosses such a point and no invalid
// UTF-8 subsequence contains it, so the tokens are exactly the recipe's. Only a chunk-long run with no
// such point (e.g. 8 MB of CJK without an ASCII letter next to a space) is cut at a UTF-8 character
// boundary, which may split differently there; prepare counts and reports these cuts. Training tokens
// go into numbered shards of --shard-tokens (<stem>_train_000000.bin, ...) when the text could exceed one.
#pragma once
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common.h"
#include "data/loader.h"
#include "data/tokenizer.h"

#define PREPARE_VAL_TOKENS 32768        // llm.c's tinyshakespeare recipe: the first 32,768 tokens validate
#define PREPARE_SHARD_TOKENS 100000000  // training tokens per shard for large inputs (llm.c's FineWeb size)
#define PREPARE_CHUNK_BYTES (8 << 20)   // bytes read at a time; also the longest run encoded in one call
#define DATA_PATH_LEN 1024              // size of the path buffers dataset_from_text fills
#define DATA_CACHE_DIR "out/data"       // default cache of shards tokenized from .txt files
#define GPT2_ENCODER_PATH "data/encoder.json"
#define GPT2_VOCAB_PATH "data/vocab.bpe"

// how to prepare; the defaults are the recipe's
struct PrepareOptions {
    const char* out_dir = DATA_CACHE_DIR;
    int64_t val_tokens = PREPARE_VAL_TOKENS;
    int64_t shard_tokens = PREPARE_SHARD_TOKENS;
    size_t chunk_bytes = PREPARE_CHUNK_BYTES;  // read size and longest run encoded at once (tests shrink it)
    bool progress = true;                      // a line on stderr every 2 s
};

// loads GPT-2's vocabulary from data/ under the current directory, with a hint when it is not there
static int tokenizer_load_default(Tokenizer* tok, char* err) {
    char why[ERR_LEN];
    if (tokenizer_load(tok, GPT2_ENCODER_PATH, GPT2_VOCAB_PATH, why) == 0) return 0;
    struct stat st;  // the hint only where the files are missing, not where they are there but damaged
    if (stat(GPT2_ENCODER_PATH, &st) == 0 && stat(GPT2_VOCAB_PATH, &st) == 0) return fail(err, "%s", why);
    return fail(err, "%s (the GPT-2 vocabulary is read from data/ in the current directory: run from the repository root)", why);
}

// "data/tinyshakespeare.txt" -> "tinyshakespeare"
static std::string file_stem(const char* path) {
    std::string name(path);
    size_t slash = name.rfind('/');
    if (slash != std::string::npos) name = name.substr(slash + 1);
    size_t dot = name.rfind('.');
    if (dot != std::string::npos && dot > 0) name = name.substr(0, dot);
    return name;
}

// one shard being written: a placeholder header, the uint16 tokens, then the real header; written under
// a temporary name and renamed when complete, so a reader never sees half a shard
struct ShardWriter {
    FILE* f = NULL;
    std::string path, tmp;
    int64_t count = 0;
    std::vector<uint16_t> buf;
};

static int shard_writer_open(ShardWriter* w, const std::string& path, char* err) {
    w->path = path;
    w->tmp = path + ".tmp." + std::to_string((long)getpid());
    w->count = 0;
    w->f = fopen(w->tmp.c_str(), "wb");
    if (!w->f) return fail(err, "%s: cannot create (%s)", w->tmp.c_str(), strerror(errno));
    int32_t header[SHARD_HEADER_INTS] = {0};
    if (fwrite(header, sizeof header, 1, w->f) != 1) return fail(err, "%s: write error", w->tmp.c_str());
    return 0;
}

static int shard_writer_put(ShardWriter* w, const int* ids, size_t n, char* err) {
    w->buf.resize(n);
    for (size_t i = 0; i < n; i++) w->buf[i] = (uint16_t)ids[i];  // ids < 50257 fit in uint16
    if (n && fwrite(w->buf.data(), 2, n, w->f) != n) return fail(err, "%s: write error (disk full?)", w->tmp.c_str());
    w->count += (int64_t)n;
    return 0;
}

static int shard_writer_close(ShardWriter* w, char* err) {
    int32_t header[SHARD_HEADER_INTS] = {0};
    header[0] = SHARD_MAGIC;
    header[1] = SHARD_VERSION;
    header[2] = (int32_t)w->count;
    int ok = fseek(w->f, 0, SEEK_SET) == 0 && fwrite(header, sizeof header, 1, w->f) == 1;
    ok = (fclose(w->f) == 0) && ok;
    w->f = NULL;
    if (!ok) return fail(err, "%s: write error (disk full?)", w->tmp.c_str());
    if (rename(w->tmp.c_str(), w->path.c_str()) != 0)
        return fail(err, "%s: cannot rename to %s (%s)", w->tmp.c_str(), w->path.c_str(), strerror(errno));
    return 0;
}

static void shard_writer_abort(ShardWriter* w) {
    if (!w->f) return;
    fclose(w->f);
    w->f = NULL;
    unlink(w->tmp.c_str());
}

// where the recipe's tokens go: the validation shard first, then the training shard(s)
struct ShardOutput {
    std::string dir, stem;
    int64_t val_tokens, shard_tokens;
    bool numbered;                     // training split in numbered shards (the text may exceed one)
    ShardWriter val, train;
    int train_shards = 0;              // training shards finished
    int64_t train_total = 0;
    std::vector<std::string> written;  // finished files, removed again if prepare fails later
};

static std::string train_shard_path(const ShardOutput* o, int index) {
    if (!o->numbered) return o->dir + "/" + o->stem + "_train.bin";
    char suffix[32];
    snprintf(suffix, sizeof suffix, "_train_%06d.bin", index);
    return o->dir + "/" + o->stem + suffix;
}

static int shard_output_put(ShardOutput* o, const int* ids, size_t n, char* err) {
    while (n > 0) {
        size_t k;
        if (o->val.count < o->val_tokens) {
            k = (size_t)std::min<int64_t>((int64_t)n, o->val_tokens - o->val.count);
            if (shard_writer_put(&o->val, ids, k, err)) return -1;
        } else {
            if (!o->train.f && shard_writer_open(&o->train, train_shard_path(o, o->train_shards), err)) return -1;
            k = (size_t)std::min<int64_t>((int64_t)n, o->shard_tokens - o->train.count);
            if (shard_writer_put(&o->train, ids, k, err)) return -1;
            o->train_total += (int64_t)k;
            if (o->train.count == o->shard_tokens) {
                if (shard_writer_close(&o->train, err)) return -1;
                o->written.push_back(o->train.path);
                o->train_shards++;
            }
        }
        ids += k;
        n -= k;
    }
    return 0;
}

struct PrepareStats {
    int64_t bytes, tokens, val_tokens, train_tokens;
    int train_shards;
    int inexact_cuts;       // chunk-long runs cut at a character boundary (see the top); 0 for normal text
    double seconds;
    std::string val_path, train_pattern;
};

// position in s[start, len) where a run too long to encode at once can be cut: preferably exact (see the
// top); *exact tells which
static size_t prepare_cut(const char* s, size_t start, size_t len, bool* exact) {
    for (size_t c = len - 1; c > start; c--) {
        unsigned char a = (unsigned char)s[c - 1], b = (unsigned char)s[c];
        if (a >= 0x21 && a <= 0x7E && (b == ' ' || (b >= '\t' && b <= '\r'))) { *exact = true; return c; }
    }
    *exact = false;
    for (size_t c = len - 1; c > start; c--)
        if (((unsigned char)s[c] & 0xC0) != 0x80) return c;
    return len;
}

// the recipe's tokens for one text file, streamed into o
static int prepare_stream(Tokenizer* tok, FILE* f, const char* txt_path, int64_t file_bytes, ShardOutput* o,
                          const PrepareOptions* opt, PrepareStats* st, char* err) {
    size_t chunk = std::max<size_t>(opt->chunk_bytes, 16);
    std::vector<char> buf(2 * chunk);
    std::vector<int> ids;
    const int eot = GPT2_EOT;
    size_t start = 0, len = 0, scan = 0;  // unencoded text is buf[start, len); no "\n\n" starts before scan
    bool eof = false, doc_start = true;   // doc_start: the next text begins a section (EOT before it)
    double t0 = now_seconds(), last_report = t0;
    for (;;) {
        const char* sep = len - scan >= 2 ? (const char*)memmem(buf.data() + scan, len - scan, "\n\n", 2) : NULL;
        size_t end = sep ? (size_t)(sep - buf.data()) + 2 : len;
        bool cut_exact = true;
        if (!sep && !eof && len - start >= chunk) {  // a section longer than a chunk
            end = prepare_cut(buf.data(), start, len, &cut_exact);
            st->inexact_cuts += !cut_exact;
        }
        if (sep || eof || end < len) {  // encode buf[start, end)
            ids.clear();
            if (doc_start) ids.push_back(eot);
            if (tokenizer_encode(tok, buf.data() + start, end - start, &ids, err)) return -1;
            if (shard_output_put(o, ids.data(), ids.size(), err)) return -1;
            st->tokens += (int64_t)ids.size();
            doc_start = sep != NULL;
            start = scan = end;
            if (sep) continue;
            if (eof) break;
        }
        if (len - start >= chunk) continue;  // still a long run after the cut: cut again before reading
        scan = std::max(start, len > 0 ? len - 1 : 0);  // a "\n\n" may begin at the last byte
        memmove(buf.data(), buf.data() + start, len - start);  // keep the unencoded text, read more
        len -= start;
        scan -= start;
        start = 0;
        size_t got = fread(buf.data() + len, 1, chunk, f);  // fits: len < chunk here
        if (got == 0 && ferror(f)) return fail(err, "%s: read error", txt_path);
        eof = got == 0;
        len += got;
        st->bytes += (int64_t)got;
        double now = now_seconds();
        if (opt->progress && now - last_report > 2.0) {
            fprintf(stderr, "prepare: %s: %.0f%% (%.1f of %.1f MB), %lld tokens, %.1f MB/s\n", txt_path,
                    100.0 * st->bytes / std::max<int64_t>(file_bytes, 1), st->bytes / 1e6, file_bytes / 1e6,
                    (long long)st->tokens, st->bytes / 1e6 / (now - t0));
            last_report = now;
        }
    }
    return 0;
}

// removes shards of an earlier run that this run's naming would not overwrite but a glob would match
static void prepare_remove_stale(const ShardOutput* o) {
    std::vector<std::string> stale;
    if (o->numbered) stale.push_back(o->dir + "/" + o->stem + "_train.bin");
    glob_t g;
    std::string numbered = o->dir + "/" + o->stem + "_train_[0-9][0-9][0-9][0-9][0-9][0-9].bin";
    if (glob(numbered.c_str(), 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            int index = atoi(g.gl_pathv[i] + strlen(g.gl_pathv[i]) - 10);
            if (!o->numbered || index >= o->train_shards) stale.push_back(g.gl_pathv[i]);
        }
        globfree(&g);
    }
    for (const std::string& p : stale) unlink(p.c_str());
}

// tokenizes one text file into <out_dir>/<stem>_val.bin and <stem>_train[_NNNNNN].bin
static int prepare_text(Tokenizer* tok, const char* txt_path, const PrepareOptions* opt, PrepareStats* st, char* err) {
    *st = PrepareStats();
    double t0 = now_seconds();
    const char* out_dir = opt->out_dir;
    int64_t val_tokens = opt->val_tokens, shard_tokens = opt->shard_tokens;
    if (val_tokens < 0 || shard_tokens < 1 || shard_tokens > INT32_MAX)
        return fail(err, "prepare: --val-tokens %lld must be >= 0 and --shard-tokens %lld in [1, 2^31)", (long long)val_tokens, (long long)shard_tokens);
    FILE* f = fopen(txt_path, "rb");
    if (!f) return fail(err, "%s: cannot open (%s)", txt_path, strerror(errno));
    struct stat fs;
    if (fstat(fileno(f), &fs) != 0 || !S_ISREG(fs.st_mode)) {
        fclose(f);
        return fail(err, "%s: not a regular file", txt_path);
    }
    if (make_dirs(out_dir, err)) { fclose(f); return -1; }
    ShardOutput o;
    o.dir = out_dir;
    o.stem = file_stem(txt_path);
    o.val_tokens = val_tokens;
    o.shard_tokens = shard_tokens;
    // at most one token per byte plus one EOT per section (>= 2 bytes each): one shard holds it all?
    o.numbered = (int64_t)fs.st_size + (int64_t)fs.st_size / 2 + 1 > val_tokens + shard_tokens;
    int rc = shard_writer_open(&o.val, o.dir + "/" + o.stem + "_val.bin", err);
    if (rc == 0) rc = prepare_stream(tok, f, txt_path, (int64_t)fs.st_size, &o, opt, st, err);
    fclose(f);
    if (rc == 0 && o.train_total == 0)
        rc = fail(err, "%s: %lld tokens, all of them taken by the %lld validation tokens: no training data (use more text, or a smaller validation split: ./train prepare --val-tokens N)",
                  txt_path, (long long)st->tokens, (long long)val_tokens);
    if (rc == 0) rc = shard_writer_close(&o.val, err);
    if (rc == 0) o.written.push_back(o.val.path);
    if (rc == 0 && o.train.f) {
        rc = shard_writer_close(&o.train, err);
        if (rc == 0) { o.written.push_back(o.train.path); o.train_shards++; }
    }
    if (rc != 0) {
        shard_writer_abort(&o.val);
        shard_writer_abort(&o.train);
        for (const std::string& p : o.written) unlink(p.c_str());
        return -1;
    }
    prepare_remove_stale(&o);
    st->val_tokens = o.val.count;
    st->train_tokens = o.train_total;
    st->train_shards = o.train_shards;
    st->val_path = o.val.path;
    st->train_pattern = o.dir + "/" + o.stem + (o.numbered ? "_train_*.bin" : "_train.bin");
    st->seconds = now_seconds() - t0;
    return 0;
}

static void prepare_print(const char* txt_path, const PrepareStats* st) {
    fprintf(stderr, "prepare: %s: %lld tokens -> %s (%lld), %s (%lld tokens in %d shard%s) in %.2f s (%.1f MB/s)\n", txt_path,
            (long long)st->tokens, st->val_path.c_str(), (long long)st->val_tokens, st->train_pattern.c_str(),
            (long long)st->train_tokens, st->train_shards, st->train_shards == 1 ? "" : "s", st->seconds,
            st->bytes / 1e6 / std::max(st->seconds, 1e-9));
    if (st->inexact_cuts)
        fprintf(stderr, "prepare: %s: note: %d run(s) longer than a read chunk with no ASCII word boundary were cut at a "
                "character boundary; tokens there may differ from encoding the text whole\n", txt_path, st->inexact_cuts);
}

// The training loop's way to use a raw text file: tokenizes txt_path once into cache_dir (NULL: out/data)
// and fills train_pattern and val_pattern (DATA_PATH_LEN bytes each) for dataloader_init. The cache is
// reused while the stamp file <stem>.source still describes the text (path, size, modification time) and
// the shards' headers check out; otherwise it is rebuilt.
static int dataset_from_text(const char* txt_path, const char* cache_dir, char* train_pattern, char* val_pattern, char* err) {
    if (!cache_dir || !*cache_dir) cache_dir = DATA_CACHE_DIR;
    struct stat fs;
    if (stat(txt_path, &fs) != 0) return fail(err, "%s: cannot open (%s)", txt_path, strerror(errno));
    std::string stem = file_stem(txt_path), dir(cache_dir);
    std::string stamp_path = dir + "/" + stem + ".source", val = dir + "/" + stem + "_val.bin", stamp, old;
    char line[DATA_PATH_LEN + 256];
    snprintf(line, sizeof line, "muongpt prepare v1: source %s bytes %lld mtime %lld.%09ld val_tokens %d shard_tokens %d\n",
             txt_path, (long long)fs.st_size, (long long)fs.st_mtim.tv_sec, (long)fs.st_mtim.tv_nsec, PREPARE_VAL_TOKENS, PREPARE_SHARD_TOKENS);
    stamp = line;
    std::string train = dir + "/" + stem + "_train.bin";
    // the cached shards are good when the stamp matches and their headers check out
    bool cached = read_whole_file(stamp_path.c_str(), &old, err) == 0 && old == stamp;
    if (cached) {
        struct stat ts;
        if (stat(train.c_str(), &ts) != 0) train = dir + "/" + stem + "_train_*.bin";
        glob_t g;
        int64_t count;
        cached = shard_read_header(val.c_str(), &count, err) == 0 && glob(train.c_str(), 0, NULL, &g) == 0;
        if (cached) {
            for (size_t i = 0; cached && i < g.gl_pathc; i++) cached = shard_read_header(g.gl_pathv[i], &count, err) == 0;
            globfree(&g);
        }
    }
    if (!cached) {
        fprintf(stderr, "data: tokenizing %s into %s (once; later runs reuse it)\n", txt_path, cache_dir);
        Tokenizer tok;
        PrepareStats st;
        if (tokenizer_load_default(&tok, err)) return -1;
        PrepareOptions opt;
        opt.out_dir = cache_dir;
        int rc = prepare_text(&tok, txt_path, &opt, &st, err);
        tokenizer_free(&tok);
        if (rc) return -1;
        prepare_print(txt_path, &st);
        train = st.train_pattern;
        FILE* f = fopen(stamp_path.c_str(), "wb");  // written last: it vouches for the shards
        if (!f) return fail(err, "%s: cannot write (%s)", stamp_path.c_str(), strerror(errno));
        bool written = fputs(stamp.c_str(), f) >= 0;
        if (fclose(f) != 0 || !written) return fail(err, "%s: write error", stamp_path.c_str());
    }
    if (train.size() >= DATA_PATH_LEN || val.size() >= DATA_PATH_LEN)
        return fail(err, "%s: path too long (over %d bytes)", cache_dir, DATA_PATH_LEN - 1);
    snprintf(train_pattern, DATA_PATH_LEN, "%s", train.c_str());
    snprintf(val_pattern, DATA_PATH_LEN, "%s", val.c_str());
    return 0;
}
