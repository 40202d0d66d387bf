// data/bytes.h: byte strings for the tokenizer (data/tokenizer.h): BytesMap, a hash table from byte strings to
// ints that looks up a piece of the text without allocating, and UTF-8: strict decoding, the longest valid
// prefix, and the replacement of invalid subsequences by U+FFFD as Python's "replace" does.
// Flow: under data/tokenizer.h; nothing GPT-2-specific.
#pragma once
#include <string>
#include "common.h"

// ----------------------------------------------------------------------------------------------------
// BytesMap: open-addressing hash table, byte string -> int32, with no allocation per lookup
// (lookups take a pointer and a length into the text being encoded).

struct BytesMapEntry {
    uint32_t key_off, key_len;  // the key is keys[key_off, key_off + key_len)
    int32_t value;
};

struct BytesMap {
    std::vector<uint64_t> slots;         // (hash >> 32) << 32 | (entry index + 1); 0 = empty; power-of-two size
    std::vector<BytesMapEntry> entries;  // in insertion order
    std::string keys;                    // every key's bytes, concatenated
};

static uint64_t bytes_hash(const char* s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
    for (; n >= 8; s += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

// the value of key s[0, n), or -1 when absent
static int bytesmap_find(const BytesMap* m, const char* s, size_t n) {
    if (m->slots.empty()) return -1;
    uint64_t h = bytes_hash(s, n), mask = m->slots.size() - 1;
    for (uint64_t i = h & mask;; i = (i + 1) & mask) {
        uint64_t slot = m->slots[i];
        if (slot == 0) return -1;
        if ((slot >> 32) != (h >> 32)) continue;
        const BytesMapEntry& e = m->entries[(uint32_t)slot - 1];
        if (e.key_len == n && memcmp(m->keys.data() + e.key_off, s, n) == 0) return e.value;
    }
}

static void bytesmap_place(BytesMap* m, uint64_t h, uint32_t e) {
    uint64_t mask = m->slots.size() - 1, i = h & mask;
    while (m->slots[i] != 0) i = (i + 1) & mask;
    m->slots[i] = (h >> 32) << 32 | (e + 1);
}

// adds a key known to be absent; the table stays at most half full
static void bytesmap_insert(BytesMap* m, const char* s, size_t n, int32_t v) {
    if ((m->entries.size() + 1) * 2 > m->slots.size()) {
        m->slots.assign(m->slots.empty() ? 1024 : m->slots.size() * 2, 0);
        for (uint32_t e = 0; e < m->entries.size(); e++)
            bytesmap_place(m, bytes_hash(m->keys.data() + m->entries[e].key_off, m->entries[e].key_len), e);
    }
    m->entries.push_back({(uint32_t)m->keys.size(), (uint32_t)n, v});
    m->keys.append(s, n);
    bytesmap_place(m, bytes_hash(s, n), (uint32_t)m->entries.size() - 1);
}

static void bytesmap_clear(BytesMap* m) {
    m->slots.clear();
    m->entries.clear();
    m->keys.clear();
}

// ----------------------------------------------------------------------------------------------------
// UTF-8

// decodes one strictly valid UTF-8 character (no overlongs, no surrogates, <= U+10FFFF) at s[0, n):
// its length, or 0 when the bytes there are not one.
static int utf8_decode(const unsigned char* s, size_t n, uint32_t* cp) {
    unsigned c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    int len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (len == 0 || (size_t)len > n) return 0;
    // the second byte's range is narrower after E0 (overlong), ED (surrogates), F0 (overlong), F4 (> 10FFFF)
    unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80, hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    if (s[1] < lo || s[1] > hi) return 0;
    uint32_t v = c & (0xFF >> (len + 1));
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        v = v << 6 | (s[k] & 0x3F);
    }
    *cp = v;
    return len;
}

static void utf8_append(std::string* out, uint32_t cp) {
    if (cp < 0x80) { out->push_back((char)cp); return; }
    if (cp < 0x800) { out->push_back((char)(0xC0 | cp >> 6)); }
    else {
        if (cp < 0x10000) out->push_back((char)(0xE0 | cp >> 12));
        else { out->push_back((char)(0xF0 | cp >> 18)); out->push_back((char)(0x80 | (cp >> 12 & 0x3F))); }
        out->push_back((char)(0x80 | (cp >> 6 & 0x3F)));
    }
    out->push_back((char)(0x80 | (cp & 0x3F)));
}

// length of the longest valid UTF-8 prefix of s[0, n)
static size_t utf8_valid_prefix(const char* s, size_t n) {
    const unsigned char* u = (const unsigned char*)s;
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        if (u[i] < 0x80) { i++; continue; }
        int len = utf8_decode(u + i, n - i, &cp);
        if (len == 0) return i;
        i += len;
    }
    return n;
}

// s with each maximal invalid subsequence replaced by U+FFFD ("substitution of maximal subparts", the
// Unicode recommendation that Python's bytes.decode("utf-8", "replace") follows): a bad lead byte is
// one subpart; a valid lead byte followed by k < len fitting continuation bytes (and then a misfit or
// the end) is one subpart of 1 + k bytes.
static void utf8_replace_invalid(const char* s, size_t n, std::string* out) {
    const unsigned char* u = (const unsigned char*)s;
    out->clear();
    out->reserve(n + 16);
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        int len = utf8_decode(u + i, n - i, &cp);
        if (len > 0) { out->append(s + i, len); i += len; continue; }
        unsigned c = u[i];
        int want = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
        unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80, hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        size_t k = 1;
        if (want > 1 && i + 1 < n && u[i + 1] >= lo && u[i + 1] <= hi) {
            k = 2;
            while ((int)k < want && i + k < n && (u[i + k] & 0xC0) == 0x80) k++;
        }
        out->append("\xEF\xBF\xBD");  // U+FFFD
        i += k;
    }
}
