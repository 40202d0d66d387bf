// data/tokenizer.h: GPT-2's byte-level BPE tokenizer, encode and decode, giving tiktoken's "gpt2" ids
// exactly. Flow: text -> [tokenizer] -> token ids -> data/prepare.h (shards) -> data/loader.h -> model;
// and model -> sampled ids -> tokenizer_decode -> text.
//
// Loaded from OpenAI's two GPT-2 files: vocab.bpe (50,000 merges, in priority order) and encoder.json
// (token -> id, 50,257 entries). As tiktoken's loader does, ranks come from vocab.bpe (the 256 single
// bytes first, then one new token per merge line) and encoder.json must agree with them id for id.
//
// Encoding, as tiktoken's encode_ordinary (a literal "<|endoftext|>" in the text is plain text):
//  1. pre-tokenize with GPT-2's split pattern (PCRE2, Unicode, JIT), so no token crosses a piece;
//  2. a piece that is itself a token is that token; otherwise byte-pair merge it: repeatedly merge the
//     adjacent pair whose concatenated bytes have the lowest rank (leftmost on ties), as tiktoken does.
//     A heap keeps this O(n log n), so a long piece (a line of base64, a megabyte of one letter) cannot
//     stall us; a cache remembers the ids of pieces already seen (most words repeat).
// Invalid UTF-8 in the input: each maximal invalid subsequence becomes U+FFFD before encoding, i.e. we
// match tiktoken's `enc.encode_ordinary(b.decode("utf-8", "replace"))`. Why this and not tiktoken's
// private `_encode_bytes(b)`: that one BPE-merges everything after the first bad byte as one unsplit
// piece (quadratic, and the tokens of a whole document then depend on one stray byte), whereas "replace"
// keeps the split pattern in charge and is what a Python pipeline reading text with errors="replace"
// (or tiktoken's own encode given lone surrogates) produces. The cost: decode(encode(b)) gives the
// replaced text, not b, for invalid b; for valid UTF-8 the round trip is exact.
// Decoding: ids -> bytes, concatenated; an id split across a UTF-8 character is fine (bytes are bytes);
// an id outside [0, 50257) is an error naming the id and its position (the caller decides to skip).
#pragma once
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <errno.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "common.h"
#include "data/bytes.h"

#define GPT2_VOCAB_SIZE 50257  // 256 bytes + 50,000 merges + <|endoftext|>
#define GPT2_EOT 50256         // <|endoftext|>: llm.c puts it before each document
#define GPT2_NUM_MERGES 50000

// GPT-2's byte alphabet (bytes_to_unicode in OpenAI's encoder.py): the printable Latin-1 bytes
// ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) stand for themselves; the other 68 bytes, in order, are shown as
// U+0100 + n. Fills code point -> byte for code points below 0x144 (-1 where none).
static void gpt2_byte_alphabet(int cp_to_byte[0x144]) {
    for (int i = 0; i < 0x144; i++) cp_to_byte[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        if (printable) cp_to_byte[b] = b;
        else cp_to_byte[0x100 + n++] = b;
    }
}

// ----------------------------------------------------------------------------------------------------
// the tokenizer

// GPT-2's split pattern, '(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+, with
// \s spelled out as Unicode's White_Space set, which is what tiktoken's Rust regex means by \s. PCRE2's
// own \s (with PCRE2_UCP) also takes U+180E (Mongolian vowel separator, no longer White_Space since
// Unicode 6.3), which would split differently from tiktoken.
#define GPT2_WS "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
static const char GPT2_SPLIT_PATTERN[] = "'(?:[sdmt]|ll|ve|re)| ?\\p{L}+| ?\\p{N}+| ?[^" GPT2_WS "\\p{L}\\p{N}]+|["
                                        GPT2_WS "]+(?![^" GPT2_WS "])|[" GPT2_WS "]+";

#define TOKENIZER_CACHE_MAX_PIECES (1 << 20)  // clear the piece cache beyond this many pieces
#define TOKENIZER_CACHE_MAX_BYTES (64 << 20)  // or this many bytes of keys (bounded memory on huge corpora)
#define TOKENIZER_CACHE_MAX_PIECE 256         // longer pieces are not cached (rarely repeat)

// load with tokenizer_load, release with tokenizer_free; not to be copied (it owns PCRE2 objects)
struct Tokenizer {
    int vocab_size = 0;                // GPT2_VOCAB_SIZE once loaded
    std::vector<uint32_t> token_off;   // (V + 1): token id's bytes are token_bytes[token_off[id], token_off[id + 1])
    std::string token_bytes;
    BytesMap ranks;                    // mergeable token's bytes -> id (= rank): all but <|endoftext|>
    int byte_token[256];               // single byte -> id
    int max_token_len = 0;             // longest token, in bytes: longer pairs need no lookup
    pcre2_code* split_re = NULL;       // the split pattern, compiled (and JIT-compiled where possible)
    pcre2_match_data* match = NULL;
    bool jit = false;
    BytesMap cache;                    // piece -> offset into cache_ids, which holds count, then the ids
    std::vector<int> cache_ids;
    std::vector<uint64_t> heap;        // BPE scratch: (rank << 32 | part start) min-heap
    std::vector<int> next, prev, rank; // BPE scratch, per byte of the piece
    std::string clean;                 // input with invalid UTF-8 replaced
};

static void tokenizer_free(Tokenizer* tok) {
    if (tok->match) pcre2_match_data_free(tok->match);
    if (tok->split_re) pcre2_code_free(tok->split_re);
    *tok = Tokenizer();
}

// the whole file into out; -1 (with err) when it cannot be read
static int read_whole_file(const char* path, std::string* out, char* err) {
    FILE* f = fopen(path, "rb");
    if (!f) return fail(err, "%s: cannot open (%s)", path, strerror(errno));
    out->clear();
    char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) out->append(buf, got);
    int bad = ferror(f);
    fclose(f);
    if (bad) return fail(err, "%s: read error", path);
    return 0;
}

// maps a string in GPT-2's byte alphabet to bytes; -1 when a character is outside it
static int gpt2_alphabet_to_bytes(const int cp_to_byte[0x144], const std::string& s, std::string* out) {
    out->clear();
    const unsigned char* u = (const unsigned char*)s.data();
    uint32_t cp;
    for (size_t i = 0; i < s.size();) {
        int len = utf8_decode(u + i, s.size() - i, &cp);
        if (len == 0 || cp >= 0x144 || cp_to_byte[cp] < 0) return -1;
        out->push_back((char)cp_to_byte[cp]);
        i += len;
    }
    return 0;
}

// reads a JSON string at s[*i] (at the opening quote) into out as UTF-8; -1 with a reason when malformed
static int json_string(const std::string& s, size_t* i, std::string* out, const char** why) {
    out->clear();
    size_t p = *i + 1;
    while (p < s.size() && s[p] != '"') {
        unsigned char c = s[p];
        if (c < 0x20) { *why = "control character inside a string"; return -1; }
        if (c != '\\') { out->push_back((char)c); p++; continue; }
        if (p + 1 >= s.size()) break;
        char e = s[p + 1];
        p += 2;
        const char* simple = strchr("\"\\/bfnrt", e);
        if (e && simple) { out->push_back("\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"]); continue; }
        if (e != 'u') { *why = "bad escape in a string"; return -1; }
        uint32_t cp = 0;
        for (int pair = 0; pair < 2; pair++) {  // a high surrogate must be followed by \u + low surrogate
            uint32_t v = 0;
            for (int k = 0; k < 4; k++, p++) {
                char h = p < s.size() ? s[p] : 0;
                int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                if (d < 0) { *why = "bad \\u escape"; return -1; }
                v = v << 4 | d;
            }
            if (pair == 0 && v >= 0xD800 && v <= 0xDBFF) {
                if (p + 1 >= s.size() || s[p] != '\\' || s[p + 1] != 'u') { *why = "lone surrogate in \\u escape"; return -1; }
                cp = v;
                p += 2;
                continue;
            }
            if (pair == 1 && (v < 0xDC00 || v > 0xDFFF)) { *why = "lone surrogate in \\u escape"; return -1; }
            if (pair == 0 && v >= 0xDC00 && v <= 0xDFFF) { *why = "lone surrogate in \\u escape"; return -1; }
            cp = pair == 1 ? 0x10000 + ((cp - 0xD800) << 10) + (v - 0xDC00) : v;
            break;
        }
        utf8_append(out, cp);
    }
    if (p >= s.size()) { *why = "unexpected end of file: truncated?"; return -1; }
    *i = p + 1;
    return 0;
}

static void json_skip_space(const std::string& s, size_t* i) {
    while (*i < s.size() && (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\n' || s[*i] == '\r')) (*i)++;
}

// reads vocab.bpe into tok->ranks (bytes -> rank): the 256 single bytes first, in alphabet order (the
// printable bytes, then the others), then one token per merge line "first second"
static int load_merges(Tokenizer* tok, const int cp_to_byte[0x144], const char* path, char* err) {
    std::string text, first, second, a, b;
    if (read_whole_file(path, &text, err)) return -1;
    std::vector<int> order;
    for (int cp = 0; cp < 0x144; cp++)
        if (cp_to_byte[cp] >= 0) order.push_back(cp_to_byte[cp]);
    for (int r = 0; r < 256; r++) {
        char c = (char)order[r];
        bytesmap_insert(&tok->ranks, &c, 1, r);
    }
    if (text.compare(0, 8, "#version") != 0) return fail(err, "%s: first line is not \"#version ...\" (not a GPT-2 merges file)", path);
    size_t line_start = text.find('\n');
    int line = 1, merges = 0;
    while (line_start != std::string::npos && line_start + 1 < text.size()) {
        size_t s = line_start + 1, e = text.find('\n', s);
        if (e == std::string::npos) e = text.size();
        line++;
        line_start = e < text.size() ? e : std::string::npos;
        std::string l = text.substr(s, e - s);
        size_t sp = l.find(' ');
        if (sp == std::string::npos || sp == 0 || sp + 1 == l.size() || l.find(' ', sp + 1) != std::string::npos)
            return fail(err, "%s: line %d is not a merge \"first second\"", path, line);
        first = l.substr(0, sp);
        second = l.substr(sp + 1);
        if (gpt2_alphabet_to_bytes(cp_to_byte, first, &a) || gpt2_alphabet_to_bytes(cp_to_byte, second, &b))
            return fail(err, "%s: line %d has a character outside GPT-2's byte alphabet", path, line);
        if (bytesmap_find(&tok->ranks, a.data(), a.size()) < 0 || bytesmap_find(&tok->ranks, b.data(), b.size()) < 0)
            return fail(err, "%s: line %d merges \"%s\", which is not a token of an earlier line", path, line,
                        bytesmap_find(&tok->ranks, a.data(), a.size()) < 0 ? first.c_str() : second.c_str());
        a += b;
        if (bytesmap_find(&tok->ranks, a.data(), a.size()) >= 0)
            return fail(err, "%s: line %d makes the token \"%s%s\" again", path, line, first.c_str(), second.c_str());
        bytesmap_insert(&tok->ranks, a.data(), a.size(), 256 + merges++);
        tok->max_token_len = std::max(tok->max_token_len, (int)a.size());
    }
    if (merges != GPT2_NUM_MERGES) return fail(err, "%s: %d merges (expected %d, GPT-2's)", path, merges, GPT2_NUM_MERGES);
    return 0;
}

// reads encoder.json (a flat JSON object token -> id) and checks it against the ranks of vocab.bpe
static int load_encoder(Tokenizer* tok, const int cp_to_byte[0x144], const char* path, char* err) {
    std::string text, key, bytes;
    if (read_whole_file(path, &text, err)) return -1;
    std::vector<std::string> tokens(GPT2_VOCAB_SIZE);
    std::vector<char> seen(GPT2_VOCAB_SIZE, 0);
    const char* why = NULL;
    size_t i = 0;
    int entries = 0;
    json_skip_space(text, &i);
    if (i >= text.size() || text[i] != '{') return fail(err, "%s: malformed JSON at byte %zu (expected '{')", path, i);
    i++;
    json_skip_space(text, &i);
    bool empty = i < text.size() && text[i] == '}';
    while (!empty) {
        json_skip_space(text, &i);
        if (i >= text.size() || text[i] != '"') { why = "expected a string key"; break; }
        size_t key_at = i;
        if (json_string(text, &i, &key, &why)) break;
        json_skip_space(text, &i);
        if (i >= text.size() || text[i] != ':') { why = "expected ':'"; break; }
        i++;
        json_skip_space(text, &i);
        long id = 0;
        size_t digits = 0;
        bool neg = i < text.size() && text[i] == '-';
        if (neg) i++;
        for (; i < text.size() && text[i] >= '0' && text[i] <= '9' && digits < 12; i++, digits++) id = id * 10 + (text[i] - '0');
        if (digits == 0 || (i < text.size() && strchr(".eE0123456789", text[i]))) { why = "expected an integer id"; break; }
        if (neg) id = -id;
        if (gpt2_alphabet_to_bytes(cp_to_byte, key, &bytes))
            return fail(err, "%s: key at byte %zu has a character outside GPT-2's byte alphabet", path, key_at);
        if (id < 0 || id >= GPT2_VOCAB_SIZE)
            return fail(err, "%s: token \"%s\" has id %ld, outside [0, %d)", path, key.c_str(), id, GPT2_VOCAB_SIZE);
        if (seen[id]) return fail(err, "%s: id %ld appears twice", path, id);
        seen[id] = 1;
        tokens[id] = bytes;
        entries++;
        json_skip_space(text, &i);
        if (i < text.size() && text[i] == ',') { i++; continue; }
        if (i < text.size() && text[i] == '}') break;
        why = "expected ',' or '}'";
        break;
    }
    if (why && i >= text.size()) why = "unexpected end of file: truncated?";
    if (why) return fail(err, "%s: malformed JSON at byte %zu (%s)", path, i, why);
    i++;
    json_skip_space(text, &i);
    if (i < text.size()) return fail(err, "%s: malformed JSON at byte %zu (text after the closing '}')", path, i);
    if (entries != GPT2_VOCAB_SIZE)
        return fail(err, "%s: %d entries (expected %d, GPT-2's vocabulary)", path, entries, GPT2_VOCAB_SIZE);
    if (tokens[GPT2_EOT] != "<|endoftext|>") return fail(err, "%s: id %d is not \"<|endoftext|>\"", path, GPT2_EOT);
    tok->token_off.assign(1, 0);
    for (int id = 0; id < GPT2_VOCAB_SIZE; id++) {
        const std::string& t = tokens[id];
        if (id != GPT2_EOT && bytesmap_find(&tok->ranks, t.data(), t.size()) != id)
            return fail(err, "%s: token id %d does not match the merges file's rank for it (encoder.json and vocab.bpe are not a pair)", path, id);
        tok->token_bytes += t;
        tok->token_off.push_back((uint32_t)tok->token_bytes.size());
    }
    return 0;
}

// 0, or -1 with one line naming the file and the problem
static int tokenizer_load(Tokenizer* tok, const char* encoder_json_path, const char* vocab_bpe_path, char* err) {
    tokenizer_free(tok);
    int cp_to_byte[0x144];
    gpt2_byte_alphabet(cp_to_byte);
    if (load_merges(tok, cp_to_byte, vocab_bpe_path, err) || load_encoder(tok, cp_to_byte, encoder_json_path, err)) {
        tokenizer_free(tok);
        return -1;
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        tok->byte_token[b] = bytesmap_find(&tok->ranks, &c, 1);
    }
    int code;
    PCRE2_SIZE at;
    tok->split_re = pcre2_compile((PCRE2_SPTR)GPT2_SPLIT_PATTERN, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code, &at, NULL);
    if (!tok->split_re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        tokenizer_free(tok);
        return fail(err, "PCRE2: cannot compile GPT-2's split pattern at offset %zu: %s", (size_t)at, (char*)msg);
    }
    tok->jit = pcre2_jit_compile(tok->split_re, PCRE2_JIT_COMPLETE) == 0;  // without the JIT: slower, same result
    tok->match = pcre2_match_data_create_from_pattern(tok->split_re, NULL);
    tok->vocab_size = GPT2_VOCAB_SIZE;
    return 0;
}

// the bytes of one token (NULL, *len = 0 for an id outside the vocabulary): for printing sampled tokens
static const char* tokenizer_token_bytes(const Tokenizer* tok, int id, size_t* len) {
    if (id < 0 || id >= tok->vocab_size) { *len = 0; return NULL; }
    *len = tok->token_off[id + 1] - tok->token_off[id];
    return tok->token_bytes.data() + tok->token_off[id];
}

// rank of the token made of the two parts starting at p (parts: next[] links start positions; n ends)
static int bpe_pair_rank(const Tokenizer* tok, const char* piece, int n, const int* next, int p) {
    int q = next[p];
    if (q >= n) return INT32_MAX;
    int end = next[q];
    if (end - p > tok->max_token_len) return INT32_MAX;
    int r = bytesmap_find(&tok->ranks, piece + p, end - p);
    return r < 0 ? INT32_MAX : r;
}

// byte-pair merge of one piece (as tiktoken's byte_pair_merge): while some adjacent pair of parts forms
// a token, merge the pair with the lowest rank, the leftmost one on a tie. Parts are a linked list of
// start positions; the heap holds candidate pairs keyed (rank, start), and an entry is stale when its
// rank no longer matches (a rank names one byte string, so a matching rank is still the same pair).
static void bpe_merge(Tokenizer* tok, const char* piece, int n, std::vector<int>* out) {
    std::vector<int>& next = tok->next;  // start of the following part (n: none)
    std::vector<int>& prev = tok->prev;  // start of the preceding part (-1: none)
    std::vector<int>& rank = tok->rank;  // rank of the pair starting at part p; -1 once p is merged away
    std::vector<uint64_t>& heap = tok->heap;
    std::greater<uint64_t> min_first;
    next.resize(n);
    prev.resize(n);
    rank.resize(n);
    heap.clear();
    for (int p = 0; p < n; p++) { next[p] = p + 1; prev[p] = p - 1; }
    for (int p = 0; p < n; p++) {
        rank[p] = bpe_pair_rank(tok, piece, n, next.data(), p);
        if (rank[p] != INT32_MAX) heap.push_back((uint64_t)rank[p] << 32 | (uint32_t)p);
    }
    std::make_heap(heap.begin(), heap.end(), min_first);
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), min_first);
        uint64_t top = heap.back();
        heap.pop_back();
        int r = (int)(top >> 32), p = (int)(uint32_t)top;
        if (rank[p] != r) continue;
        int q = next[p];  // merge part q into part p
        next[p] = next[q];
        if (next[q] < n) prev[next[q]] = p;
        rank[q] = -1;
        // p and the part before it now pair with longer parts
        for (int s : {p, prev[p]}) {
            if (s < 0) continue;
            rank[s] = bpe_pair_rank(tok, piece, n, next.data(), s);
            if (rank[s] == INT32_MAX) continue;
            heap.push_back((uint64_t)rank[s] << 32 | (uint32_t)s);
            std::push_heap(heap.begin(), heap.end(), min_first);
        }
    }
    for (int p = 0; p < n; p = next[p]) out->push_back(bytesmap_find(&tok->ranks, piece + p, next[p] - p));
}

// appends the ids of one pre-tokenized piece
static void encode_piece(Tokenizer* tok, const char* piece, size_t n, std::vector<int>* out) {
    if (n == 1) { out->push_back(tok->byte_token[(unsigned char)piece[0]]); return; }
    int id = bytesmap_find(&tok->ranks, piece, n);  // the whole piece is one token (most English words)
    if (id >= 0) { out->push_back(id); return; }
    int at = bytesmap_find(&tok->cache, piece, n);
    if (at >= 0) {
        out->insert(out->end(), tok->cache_ids.begin() + at + 1, tok->cache_ids.begin() + at + 1 + tok->cache_ids[at]);
        return;
    }
    size_t first = out->size();
    bpe_merge(tok, piece, (int)n, out);
    if (n > TOKENIZER_CACHE_MAX_PIECE) return;
    if (tok->cache.entries.size() >= TOKENIZER_CACHE_MAX_PIECES || tok->cache.keys.size() >= TOKENIZER_CACHE_MAX_BYTES) {
        bytesmap_clear(&tok->cache);
        tok->cache_ids.clear();
    }
    bytesmap_insert(&tok->cache, piece, n, (int32_t)tok->cache_ids.size());
    tok->cache_ids.push_back((int)(out->size() - first));
    tok->cache_ids.insert(tok->cache_ids.end(), out->begin() + first, out->end());
}

// appends the ids of text[0, len) to out, as tiktoken's encode_ordinary (invalid UTF-8: see the top).
// -1 only if PCRE2 reports a matching error (e.g. out of memory), with err set.
static int tokenizer_encode(Tokenizer* tok, const char* text, size_t len, std::vector<int>* out, char* err) {
    if (!tok->split_re) return fail(err, "tokenizer: not loaded");
    if (utf8_valid_prefix(text, len) != len) {
        utf8_replace_invalid(text, len, &tok->clean);
        text = tok->clean.data();
        len = tok->clean.size();
    }
    PCRE2_SPTR s = (PCRE2_SPTR)text;
    size_t pos = 0;
    while (pos < len) {
        int rc = tok->jit ? pcre2_jit_match(tok->split_re, s, len, pos, 0, tok->match, NULL)
                          : pcre2_match(tok->split_re, s, len, pos, PCRE2_NO_UTF_CHECK, tok->match, NULL);
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return fail(err, "tokenizer: PCRE2 error at byte %zu: %s", pos, (char*)msg);
        }
        PCRE2_SIZE* ov = pcre2_get_ovector_pointer(tok->match);
        // every character is a letter, a number, a space or none of these, so pieces tile the text
        if (ov[0] != pos || ov[1] <= pos) return fail(err, "tokenizer: split pattern left a gap at byte %zu", pos);
        if (ov[1] - pos > (size_t)INT32_MAX) return fail(err, "tokenizer: a piece of %zu bytes at byte %zu (over 2 GiB without a break)", (size_t)(ov[1] - pos), pos);
        encode_piece(tok, text + pos, ov[1] - pos, out);
        pos = ov[1];
    }
    return 0;
}

// appends the bytes of ids[0, n) to out. An id outside [0, vocab size) stops decoding there: -1 with err
// naming the id and its position; out then holds the bytes of the ids before it.
static int tokenizer_decode(const Tokenizer* tok, const int* ids, size_t n, std::string* out, char* err) {
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char* b = tokenizer_token_bytes(tok, ids[i], &len);
        if (!b) return fail(err, "token id %d at position %zu is outside the vocabulary [0, %d)", ids[i], i, tok->vocab_size);
        out->append(b, len);
    }
    return 0;
}
