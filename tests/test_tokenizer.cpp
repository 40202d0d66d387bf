// tests/test_tokenizer.cpp: data/tokenizer.h gives tiktoken's "gpt2" ids exactly, token for token, and
// decodes them back. Reference values come from dev/gen_tokenizer_fixture.py (tiktoken built offline from
// the same data/encoder.json and data/vocab.bpe). Run from the repository root (paths are relative).
// Invalid UTF-8 input is encoded as tiktoken's enc.encode_ordinary(b.decode("utf-8", "replace")): every
// maximal invalid subsequence becomes U+FFFD; decode then gives the replaced text, not the input bytes.
#include <doctest/doctest.h>

#include "data/tokenizer.h"

// one tokenizer for the whole file (loading takes ~50 ms); NULL with a failed CHECK if it cannot load
static Tokenizer* test_tokenizer() {
    static Tokenizer tok;
    static bool tried = false, ok = false;
    if (!tried) {
        char err[ERR_LEN] = "";
        tried = true;
        ok = tokenizer_load(&tok, "data/encoder.json", "data/vocab.bpe", err) == 0;
        if (!ok) MESSAGE(err);
    }
    CHECK(ok);
    return ok ? &tok : NULL;
}

static uint64_t fnv1a64_ids(const std::vector<int>& ids) {  // over the little-endian int32 bytes, as the script
    uint64_t h = 0xcbf29ce484222325ull;
    for (int id : ids)
        for (int k = 0; k < 4; k++) {
            h ^= (uint32_t)id >> (8 * k) & 0xFF;
            h *= 0x100000001b3ull;
        }
    return h;
}

static std::string hex_to_bytes(const std::string& hex) {
    std::string out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back((char)strtol(hex.substr(i, 2).c_str(), NULL, 16));
    return out;
}

static std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t i = 0; i <= s.size(); i++)
        if (i == s.size() || s[i] == sep) {
            parts.push_back(s.substr(start, i - start));
            start = i + 1;
        }
    return parts;
}

static std::vector<std::string> fixture_lines(const char* path) {
    std::string text;
    char err[ERR_LEN];
    std::vector<std::string> lines;
    if (read_whole_file(path, &text, err)) {
        FAIL(err);
        return lines;
    }
    for (const std::string& l : split(text, '\n'))
        if (!l.empty() && l[0] != '#') lines.push_back(l);
    return lines;
}

TEST_CASE("tokenizer: GPT-2 vocabulary facts") {
    Tokenizer* tok = test_tokenizer();
    if (!tok) return;
    CHECK(tok->vocab_size == GPT2_VOCAB_SIZE);
    size_t len;
    const char* eot = tokenizer_token_bytes(tok, GPT2_EOT, &len);
    CHECK(std::string(eot, len) == "<|endoftext|>");
    const char* space_the = tokenizer_token_bytes(tok, 262, &len);  // 262 is " the" in GPT-2
    CHECK(std::string(space_the, len) == " the");
    CHECK(tokenizer_token_bytes(tok, GPT2_VOCAB_SIZE, &len) == NULL);
    CHECK(tokenizer_token_bytes(tok, -1, &len) == NULL);
    // all 256 single bytes are tokens, so any byte string can be represented
    for (int b = 0; b < 256; b++) {
        const char* t = tokenizer_token_bytes(tok, tok->byte_token[b], &len);
        CHECK((len == 1 && (unsigned char)t[0] == b));
    }
}

TEST_CASE("tokenizer: ids equal tiktoken's, and decode inverts encode, on every fixture string") {
    Tokenizer* tok = test_tokenizer();
    if (!tok) return;
    std::vector<std::string> lines = fixture_lines("tests/fixtures/tokenizer_cases.txt");
    CHECK(lines.size() >= 300);
    int mismatched = 0, invalid_inputs = 0;
    for (size_t c = 0; c < lines.size(); c++) {
        std::vector<std::string> f = split(lines[c], '\t');
        REQUIRE(f.size() == 4);
        std::string input = hex_to_bytes(f[1]);
        std::vector<int> want, got;
        for (const std::string& id : split(f[2], ' '))
            if (!id.empty()) want.push_back(atoi(id.c_str()));
        char err[ERR_LEN] = "";
        REQUIRE(tokenizer_encode(tok, input.data(), input.size(), &got, err) == 0);
        if (got != want) {
            mismatched++;
            MESSAGE("case " << c << " (" << f[0] << ", input hex " << f[1].substr(0, 80) << "): ids differ from tiktoken's");
        }
        // decode(encode(s)) == s for valid UTF-8; == s with U+FFFD for each invalid subsequence otherwise
        std::string expected = f[3] == "=" ? input : hex_to_bytes(f[3]), back;
        if (f[3] != "=") {
            invalid_inputs++;
            std::string replaced;
            utf8_replace_invalid(input.data(), input.size(), &replaced);
            CHECK(replaced == expected);
        }
        CHECK(tokenizer_decode(tok, got.data(), got.size(), &back, err) == 0);
        CHECK(back == expected);
    }
    CHECK(mismatched == 0);
    CHECK(invalid_inputs >= 50);  // the fixture does hold invalid UTF-8
}

// must match sweep_text() in dev/gen_tokenizer_fixture.py: each code point beside a letter, a digit, a
// space and a symbol
static std::string sweep_text(uint32_t first, uint32_t last) {
    std::string s;
    for (uint32_t c = first; c < last; c++) {
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        std::string ch;
        utf8_append(&ch, c);
        s += "a" + ch + "1" + ch + " " + ch + "!" + ch;
    }
    return s;
}

TEST_CASE("tokenizer: letter/number/space classes of every code point in planes 0-3 match tiktoken's") {
    Tokenizer* tok = test_tokenizer();
    if (!tok) return;
    std::vector<std::string> lines = fixture_lines("tests/fixtures/tokenizer_unicode.txt");
    CHECK(lines.size() == 67);
    int mismatched = 0;
    for (const std::string& l : lines) {
        std::vector<std::string> f = split(l, ' ');
        REQUIRE(f.size() == 4);
        uint32_t first = (uint32_t)strtoul(f[0].c_str(), NULL, 16), last = (uint32_t)strtoul(f[1].c_str(), NULL, 16);
        std::string text = sweep_text(first, last);
        std::vector<int> ids;
        char err[ERR_LEN] = "";
        REQUIRE(tokenizer_encode(tok, text.data(), text.size(), &ids, err) == 0);
        char hash[32];
        snprintf(hash, sizeof hash, "%016llx", (unsigned long long)fnv1a64_ids(ids));
        if (ids.size() != strtoul(f[2].c_str(), NULL, 10) || f[3] != hash) {
            mismatched++;
            MESSAGE("code points [U+" << f[0] << ", U+" << f[1] << "): " << ids.size() << " tokens, tiktoken " << f[2]);
        }
    }
    CHECK(mismatched == 0);
}

TEST_CASE("tokenizer: the whole of tinyshakespeare gives tiktoken's token count and ids") {
    Tokenizer* tok = test_tokenizer();
    if (!tok) return;
    std::string text, want_hash;
    char err[ERR_LEN] = "";
    REQUIRE(read_whole_file("data/tinyshakespeare.txt", &text, err) == 0);
    size_t want_tokens = 0;
    for (const std::string& l : fixture_lines("tests/fixtures/tokenizer_shakespeare.txt")) {
        std::vector<std::string> f = split(l, ' ');
        if (f[0] == "tokens") want_tokens = strtoul(f[1].c_str(), NULL, 10);
        if (f[0] == "ids_fnv") want_hash = f[1];
    }
    CHECK(want_tokens == 338025);  // the fixture is the one for this corpus
    std::vector<int> ids;
    REQUIRE(tokenizer_encode(tok, text.data(), text.size(), &ids, err) == 0);
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)fnv1a64_ids(ids));
    CHECK(ids.size() == want_tokens);
    CHECK(std::string(hash) == want_hash);
    std::string back;
    CHECK(tokenizer_decode(tok, ids.data(), ids.size(), &back, err) == 0);
    CHECK(back == text);
}

TEST_CASE("tokenizer: invalid UTF-8 is encoded as tiktoken encodes the text with U+FFFD in its place") {
    // b"hello \xff world": tiktoken's enc.encode_ordinary(b.decode("utf-8", "replace")) gives
    // [31373, 20543, 995] ("hello", " \ufffd", " world"), and so do we. tiktoken's private
    // enc._encode_bytes(b) gives [31373, 220, 187, 995] instead: it merges " \xff world" as one unsplit
    // piece; we do not follow it (see data/tokenizer.h).
    Tokenizer* tok = test_tokenizer();
    if (!tok) return;
    const char* s = "hello \xff world";
    std::vector<int> ids, want = {31373, 20543, 995};
    char err[ERR_LEN] = "";
    REQUIRE(tokenizer_encode(tok, s, strlen(s), &ids, err) == 0);
    CHECK(ids == want);
    std::string back;
    CHECK(tokenizer_decode(tok, ids.data(), ids.size(), &back, err) == 0);
    CHECK(back == "hello \xEF\xBF\xBD world");
    // maximal subparts: a truncated 3-byte character is one U+FFFD, a lone continuation byte another
    std::string replaced;
    utf8_replace_invalid("a\xE2\x82" "b\x80", 5, &replaced);
    CHECK(replaced == "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
}

TEST_CASE("tokenizer: ordinary encoding, a literal <|endoftext|> is not the special token") {
    Tokenizer* tok = test_tokenizer();
    if (!tok) return;
    std::vector<int> ids;
    char err[ERR_LEN] = "";
    const char* s = "<|endoftext|>";
    REQUIRE(tokenizer_encode(tok, s, strlen(s), &ids, err) == 0);
    CHECK(ids.size() > 1);
    for (int id : ids) CHECK(id != GPT2_EOT);
}

TEST_CASE("tokenizer: decode of arbitrary ids is safe") {
    Tokenizer* tok = test_tokenizer();
    if (!tok) return;
    char err[ERR_LEN] = "";
    // ids that split a UTF-8 character decode to the raw bytes, in order: "日" = E6 97 A5, one byte each
    int split_char[3] = {tok->byte_token[0xE6], tok->byte_token[0x97], tok->byte_token[0xA5]};
    std::string out;
    CHECK(tokenizer_decode(tok, split_char, 1, &out, err) == 0);
    CHECK(out == "\xE6");
    out.clear();
    CHECK(tokenizer_decode(tok, split_char, 3, &out, err) == 0);
    CHECK(out == "日");
    // an id outside the vocabulary stops decoding with an error naming the id and its position
    int bad[4] = {40, 1842, GPT2_VOCAB_SIZE, 13};  // "I", " love", out of range, "."
    out.clear();
    CHECK(tokenizer_decode(tok, bad, 4, &out, err) == -1);
    CHECK(out == "I love");
    CHECK(strstr(err, "50257") != NULL);
    CHECK(strstr(err, "position 2") != NULL);
    int negative = -5;
    CHECK(tokenizer_decode(tok, &negative, 1, &out, err) == -1);
    CHECK(strstr(err, "-5") != NULL);
    // every id decodes, and the EOT decodes to its text (as tiktoken's decode)
    std::vector<int> all(GPT2_VOCAB_SIZE);
    for (int i = 0; i < GPT2_VOCAB_SIZE; i++) all[i] = i;
    out.clear();
    CHECK(tokenizer_decode(tok, all.data(), all.size(), &out, err) == 0);
    CHECK(out.size() > 300000);
    CHECK(out.compare(out.size() - 13, 13, "<|endoftext|>") == 0);
}

TEST_CASE("tokenizer: very long pieces encode in O(n log n) and round-trip") {
    // one piece of a million bytes each; tiktoken's quadratic merge would take minutes, ours must not
    Tokenizer* tok = test_tokenizer();
    if (!tok) return;
    std::vector<std::string> inputs = {std::string(1 << 20, 'a'), std::string(1 << 20, ' ') + "x", std::string(1 << 20, '7')};
    std::string mixed;
    Rng rng = rng_make(7);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < (1 << 20); i++) mixed.push_back(alphabet[rng_u32(&rng) % 64]);
    inputs.push_back(mixed);
    for (const std::string& s : inputs) {
        std::vector<int> ids;
        std::string back;
        char err[ERR_LEN] = "";
        REQUIRE(tokenizer_encode(tok, s.data(), s.size(), &ids, err) == 0);
        CHECK(ids.size() < s.size());  // merges happened
        CHECK(tokenizer_decode(tok, ids.data(), ids.size(), &back, err) == 0);
        CHECK(back == s);
    }
}

TEST_CASE("tokenizer: encoding is the same in pieces, with a warm cache, and after reload") {
    // the piece cache must not change results: encode the corpus twice with one tokenizer and once with a
    // fresh one; and encoding is per piece, so text cut at a "\n" between two letters encodes the same
    Tokenizer* tok = test_tokenizer();
    if (!tok) return;
    std::string text;
    char err[ERR_LEN] = "";
    REQUIRE(read_whole_file("data/tinyshakespeare.txt", &text, err) == 0);
    text.resize(200000);
    std::vector<int> a, b, c, d;
    REQUIRE(tokenizer_encode(tok, text.data(), text.size(), &a, err) == 0);
    REQUIRE(tokenizer_encode(tok, text.data(), text.size(), &b, err) == 0);
    Tokenizer fresh;
    REQUIRE(tokenizer_load(&fresh, "data/encoder.json", "data/vocab.bpe", err) == 0);
    REQUIRE(tokenizer_encode(&fresh, text.data(), text.size(), &c, err) == 0);
    tokenizer_free(&fresh);
    CHECK(a == b);
    CHECK(a == c);
    size_t cut = text.find("e\nF", 100000) + 2;  // after the newline, before the letter
    REQUIRE(tokenizer_encode(tok, text.data(), cut, &d, err) == 0);
    REQUIRE(tokenizer_encode(tok, text.data() + cut, text.size() - cut, &d, err) == 0);
    CHECK(d == a);
}
