"""dev/gen_tokenizer_fixture.py: tiktoken reference values for tests/test_tokenizer.cpp and tests/test_data.cpp.

Run from the repository root:  python3 dev/gen_tokenizer_fixture.py
Writes (small, committed; CI has no Python):
  tests/fixtures/tokenizer_cases.txt       ~600 strings and tiktoken's ids for each
  tests/fixtures/tokenizer_unicode.txt     per block of code points: token count and FNV-1a of the ids
  tests/fixtures/tokenizer_shakespeare.txt token count and hash of all of data/tinyshakespeare.txt, and the
                                           sizes and hashes of the two shards llm.c's recipe makes from it
tiktoken cannot download its files here, so the "gpt2" encoding is built offline from data/vocab.bpe and
data/encoder.json (the same files, same sha256, that tiktoken fetches).

Invalid UTF-8: our tokenizer encodes bytes b as tiktoken's enc.encode_ordinary(b.decode("utf-8", "replace"))
(see data/tokenizer.h for why); the expected ids of byte strings here are made exactly that way.
"""
import hashlib
import random
import struct

import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
EOT = 50256
VAL_TOKENS = 32768  # llm.c's tinyshakespeare recipe: the first 32,768 tokens are the validation split
SHARD_MAGIC, SHARD_VERSION = 20240520, 1


def gpt2_encoding():
    ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file="data/vocab.bpe", encoder_json_file="data/encoder.json")
    return tiktoken.Encoding(name="gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": EOT})


def encode_bytes(enc, b):
    """Our tokenizer's contract: invalid UTF-8 is replaced by U+FFFD (maximal subparts) first."""
    return enc.encode_ordinary(b.decode("utf-8", "replace"))


def fnv1a64_ids(ids):
    """FNV-1a 64 over the little-endian int32 bytes of ids (tests/test_tokenizer.cpp computes the same)."""
    h = 0xCBF29CE484222325
    for byte in struct.pack(f"<{len(ids)}i", *ids):
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def fnv1a64_bytes(data):
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


# ------------------------------------------------------------------------------------------------------
# llm.c's tinyshakespeare recipe (dev/data/tinyshakespeare.py): every "\n\n"-separated section is a
# document with <|endoftext|> before it; the first 32,768 tokens are validation, the rest training.

def recipe_tokens(enc, text):
    sections = text.split("\n\n")
    tokens = []
    for i, s in enumerate(sections):
        tokens.append(EOT)
        tokens.extend(enc.encode_ordinary(s + "\n\n" if i + 1 < len(sections) else s))
    return tokens


def shard_bytes(tokens):
    header = [0] * 256
    header[0], header[1], header[2] = SHARD_MAGIC, SHARD_VERSION, len(tokens)
    return struct.pack("<256i", *header) + struct.pack(f"<{len(tokens)}H", *tokens)


# ------------------------------------------------------------------------------------------------------
# test strings

HAND = {
    "empty": ["", " ", "a", "\n", "\t", "'", "  ", "\n\n", "\r\n"],
    "prose": [
        "Hello world", "Hello, world!", "The quick brown fox jumps over the lazy dog.",
        "It was the best of times, it was the worst of times.", "  leading spaces", "trailing spaces   ",
        "trailing newline\n", "Mixed CASE Words AND acronyms like NASA, GPU, CPU.",
        "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n",
        "<|endoftext|>", "text <|endoftext|> more text", "<|endoftext|><|endoftext|>",
        "e-mail: someone@example.com, url: https://example.org/a/b?c=d&e=f#g",
    ],
    "contraction": [
        "it's", "don't", "we're", "they've", "I'm", "you'll", "he'd", "IT'S", "DON'T", "WE'RE", "THEY'VE",
        "I'M", "YOU'LL", "HE'D", "It'S", "We'Re", "you'Ll", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d",
        "'S", "'T", "'RE", "'VE", "'M", "'LL", "'D", "''s", "'s'", "rock'n'roll", "o'clock", "'tis", "' s",
        "don''t", "'sdmt", "'llama", "'vex", "'rex", "dogs' toys", "the '90s", "x'y'z", "'", "''", "'''",
        "l'été", "'日本", "'1", "' '", "can't won't shan't", "I'd've", "she'sn't",
    ],
    "number": [
        "0", "7", "12", "123", "1234", "12345", "1234567890", "3.14159", "1,234,567.89", "-42", "+1",
        "2024-05-20", "10:30pm", "1e10", "0x1F", "v1.2.3", "100%", "$5.99", "50257 tokens", "a1b2c3",
        "12345678901234567890123456789012345678901234567890", "٣٤٥", "१२३", "１２３", "²³", "Ⅻ", "½ ¾",
        "3rd 21st 2nd", " 1 2 3", "99 bottles", "⑧",
    ],
    "space": [
        "a  b", "a   b", "a\tb", "a\t\tb", "a\nb", "a\n\nb", "a\n\n\nb", "a \n b", "a\r\nb", "a \t\n c",
        "   ", "\t\t\t", "\n\n\n\n", " \n", "\n ", " \t ", "end  ", "end\t", "end \n", "  x  ", "\u00a0a",
        "a\u00a0b", "a\u3000b", "a\u2028b", "a\u2029b", "a\u0085b", "x\u0085\u0085a", "a\u180eb",
        "\u180e!", "a \u180e b", "a\u200bb", "a\u2003b", "a\u202fb", "a\u205fb", "a\x0bb", "a\x0cb",
        "a\x1cb", "a\u1680b", "\u3000\u3000x", "a \u00a0 b", "a\u00a0 b", "  \u00a0x",
    ],
    "punctuation": [
        "!!!", "...", "?!?!", "--", "---", "—", "–", "(a)", "[x]", "{}", "<>", "a.b", "a..b", "$$$",
        "#!/bin/sh", "@@ -1,3 +1,4 @@", "''\"\"``", "«quoted»", "„Zitat“", "“smart quotes”", "‘single’",
        "…", "•", "§1", "©®™", "¿Qué?", "¡Hola!", "***bold***", "~~~", "^^", "|||", "\\\\", "/*", "*/",
        "==>", "!=", "&&", "::", ";;", "%%%", "@#$%^&*()",
    ],
    "latin": [
        "café", "naïve", "résumé", "Ångström", "Straße", "Ærøskøbing", "Łódź", "Škoda", "façade", "São Paulo",
        "crème brûlée", "Dvořák", "İstanbul", "ﬁnancial", "e\u0301", "n\u0303o", "Ǆemal", "Ĳssel",
    ],
    "greek": ["Ελληνικά", "αβγδε", "Καλημέρα κόσμε", "ΑΒΓ αβγ", "λόγος", "π ≈ 3.14"],
    "cyrillic": ["Привет, мир!", "Съешь же ещё этих мягких французских булок", "ЁЛКА ёлка", "Україна", "Ђорђе"],
    "cjk": [
        "日本語", "こんにちは世界", "你好，世界！", "中文字符测试", "한국어 텍스트", "カタカナ", "漢字かな交じり文",
        "𠀀𠀁", "「引用」", "東京2024", "ｈａｌｆｗｉｄｔｈ", "한글 123",
    ],
    "arabic": ["مرحبا بالعالم", "العربية", "السلام عليكم", "עברית", "שלום עולם", "فارسی ۱۲۳"],
    "other_script": ["नमस्ते दुनिया", "สวัสดีชาวโลก", "ሰላም", "ᚠᚢᚦ", "ქართული", "Հայերեն", "ꦗꦮ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝟙𝟚𝟛"],
    "emoji": [
        "😀", "😀😀😀", "hi 😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🏴‍☠️", "🇫🇷", "🇯🇵🇺🇸", "1️⃣", "❤️", "☺", "✓✗",
        "🧑🏾‍💻 coding", "👩‍❤️‍💋‍👨", "🫠", "emoji🎉party", " 🎉", "🏳️‍⚧️", "🇺🇳!",
    ],
    "code": [
        "int main() { return 0; }", "for (int i = 0; i < n; i++) {\n    sum += a[i];\n}\n",
        "def f(x):\n    return x ** 2\n", "    indented\n        more\n", "{\"key\": [1, 2, 3], \"b\": null}",
        "<div class=\"x\">text</div>", "SELECT * FROM t WHERE id = 42;", "x = y != z && w || !v",
        "#include <stdio.h>\n", "    \n    \n", "\tif (x) {\n\t\ty();\n\t}\n", "a->b.c[0]", "i++; --j;",
        "// comment\n/* block */", "$ ls -la | grep foo > out.txt", "lambda x: x['key']",
        "const auto& [a, b] = pair;", "std::vector<int> v{1,2,3};",
    ],
}

INVALID = [
    b"\xff", b"\xfe\xff", b"\x80", b"\xbf", b"a\x80b", b"hello \xff world", b"\xc0\xaf", b"\xc1\x81",
    b"\xe2\x82", b"\xe2\x82x", b"\xe2", b"\xf0\x9f\x98", b"\xf0\x9f\x98 smile", b"\xed\xa0\x80",
    b"\xed\xbf\xbf", b"\xed\x9f\xbf", b"\xf4\x90\x80\x80", b"\xf4\x8f\xbf\xbf", b"\xf5\x80\x80\x80",
    b"\xe0\x80\x80", b"\xe0\xa0\x80", b"\xf0\x80\x80\x80", b"\xf0\x90\x80\x80", b"caf\xe9", b"na\xefve",
    b"\xc3", b"\xc3\xc3\xa9", b"abc\xe2\x82\xac\xe2\x82", b"\x80\x80\x80", b" \x80", b"\x80 ", b"'\x80s",
    b"1\x802", b"\xef\xbf\xbd", b"\xef\xbf\xbd\xff",
]

SCRIPT_RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F),
                 (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F), (0x2190, 0x23FF), (0x3000, 0x30FF),
                 (0x4E00, 0x4FFF), (0xAC00, 0xAD00), (0xFF00, 0xFFEF), (0x1F300, 0x1F6FF), (0x1D400, 0x1D7FF),
                 (0x20000, 0x20100), (0xE0000, 0xE007F)]
WORDS = ["the", "of", "and", "to", "in", "is", "that", "it", "was", "for", "on", "are", "with", "as", "I",
         "his", "they", "be", "at", "one", "have", "this", "from", "or", "had", "by", "word", "but", "what",
         "Shakespeare", "tokenizer", "optimizer", "Muon", "AdamW", "gradient", "orthogonal", "matrix"]


def generated(rng, corpus):
    cases = []
    lines = [l for l in corpus.split("\n") if l.strip()]
    for _ in range(60):  # prose: corpus passages, several lines with their newlines
        i = rng.randrange(len(lines) - 4)
        cases.append(("prose_corpus", "\n".join(lines[i:i + rng.randint(1, 4)]).encode()))
    for _ in range(60):  # random words with random whitespace, contractions, numbers and punctuation
        parts = []
        for _ in range(rng.randint(1, 12)):
            parts.append(rng.choice([rng.choice(WORDS), rng.choice(WORDS).upper(), str(rng.randrange(10 ** rng.randint(1, 12))),
                                     rng.choice(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL"]),
                                     rng.choice([".", ",", "!?", "...", "--", "\"", "(", ")", ";"])]))
            parts.append(rng.choice([" ", " ", " ", "", "  ", "\t", "\n", "\n\n", " \n", "\u00a0", "   \n\t "]))
        cases.append(("mixed_random", "".join(parts).encode()))
    for _ in range(60):  # random code points from assorted scripts
        s = []
        for _ in range(rng.randint(1, 16)):
            lo, hi = rng.choice(SCRIPT_RANGES)
            c = rng.randint(lo, hi)
            s.append(chr(c) if not 0xD800 <= c <= 0xDFFF else "x")
            if rng.random() < 0.3:
                s.append(rng.choice([" ", "  ", "\n", "1", "'s", "."]))
        cases.append(("unicode_random", "".join(s).encode()))
    for _ in range(50):  # random bytes, mostly high (invalid UTF-8 in every form), with some ASCII
        n = rng.randint(1, 24)
        cases.append(("invalid_random", bytes(rng.choice([rng.randint(0x80, 0xFF), rng.randint(0x20, 0x7E), 0xE2, 0xF0, 0xED])
                                              for _ in range(n))))
    for _ in range(20):  # valid text cut at a random byte (sampling output, truncated files)
        s = rng.choice(["日本語のテキスト", "Привет мир", "emoji 😀👍🏽🇫🇷", "café crème", "ελληνικά"]).encode()
        cases.append(("invalid_truncated", s[:rng.randint(1, len(s) - 1)]))
    for n in (100, 1000):  # long pieces: one word, a space run, a digit run, a symbol run
        cases += [("long", b"a" * n), ("long", b" " * n + b"x"), ("long", b"7" * n), ("long", b"\n" * n),
                  ("long", "é".encode() * n), ("long", b"!" * n), ("long", b"ab" * n)]
    cases.append(("long", bytes(rng.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
                                for _ in range(1500))))  # base64-like: one long piece of mixed letters
    return cases


# ------------------------------------------------------------------------------------------------------
# Unicode sweep: for each block of code points, the text below, its token count and FNV-1a of its ids.
# Each code point c sits beside a letter, a digit, a space and a symbol, so a letter/number/space class
# that differs between PCRE2 and tiktoken's Rust regex changes the split and so the ids.

SWEEP_RANGES = [(0x0, 0x40000), (0xE0000, 0xE1000), (0xF0000, 0xF1000), (0x10F000, 0x110000)]
SWEEP_BLOCK = 4096


def sweep_text(first, last):
    """Must match sweep_text() in tests/test_tokenizer.cpp."""
    out = []
    for c in range(first, last):
        if 0xD800 <= c <= 0xDFFF:
            continue
        ch = chr(c)
        out.append("a" + ch + "1" + ch + " " + ch + "!" + ch)
    return "".join(out)


def main():
    enc = gpt2_encoding()
    corpus = open("data/tinyshakespeare.txt", encoding="utf-8").read()
    rng = random.Random(20240520)

    cases = [(kind, s.encode()) for kind, strs in HAND.items() for s in strs]
    cases += [("invalid", b) for b in INVALID]
    cases += generated(rng, corpus)
    with open("tests/fixtures/tokenizer_cases.txt", "w") as f:
        f.write("# dev/gen_tokenizer_fixture.py: kind <TAB> input bytes (hex) <TAB> tiktoken gpt2 ids <TAB>"
                " decode(ids) (hex), or '=' when it equals the input\n")
        for kind, b in cases:
            ids = encode_bytes(enc, b)
            back = enc.decode_bytes(ids)
            f.write(f"{kind}\t{b.hex()}\t{' '.join(map(str, ids))}\t{'=' if back == b else back.hex()}\n")
    print(f"tokenizer_cases.txt: {len(cases)} strings")

    with open("tests/fixtures/tokenizer_unicode.txt", "w") as f:
        f.write("# dev/gen_tokenizer_fixture.py: code point block [first, last) <space> token count <space>"
                " FNV-1a 64 of the int32 ids of sweep_text(first, last)\n")
        blocks = 0
        for lo, hi in SWEEP_RANGES:
            for first in range(lo, hi, SWEEP_BLOCK):
                last = min(first + SWEEP_BLOCK, hi)
                ids = enc.encode_ordinary(sweep_text(first, last))
                f.write(f"{first:x} {last:x} {len(ids)} {fnv1a64_ids(ids):016x}\n")
                blocks += 1
    print(f"tokenizer_unicode.txt: {blocks} blocks")

    ids = enc.encode_ordinary(corpus)
    tokens = recipe_tokens(enc, corpus)
    # the recipe as llm.c writes it, in one call: the same tokens
    assert tokens == enc.encode("<|endoftext|>" + corpus.replace("\n\n", "\n\n<|endoftext|>"),
                                allowed_special={"<|endoftext|>"})
    val, train = shard_bytes(tokens[:VAL_TOKENS]), shard_bytes(tokens[VAL_TOKENS:])
    with open("tests/fixtures/tokenizer_shakespeare.txt", "w") as f:
        f.write("# dev/gen_tokenizer_fixture.py: data/tinyshakespeare.txt encoded whole (encode_ordinary), and the\n"
                "# shards of llm.c's recipe (EOT before each \\n\\n section; first 32768 tokens = val). fnv = FNV-1a 64.\n")
        f.write(f"text_bytes {len(corpus.encode())}\n")
        f.write(f"tokens {len(ids)}\nids_fnv {fnv1a64_ids(ids):016x}\n")
        f.write(f"recipe_tokens {len(tokens)}\n")
        f.write(f"val_bytes {len(val)}\nval_fnv {fnv1a64_bytes(val):016x}\nval_sha256 {hashlib.sha256(val).hexdigest()}\n")
        f.write(f"train_bytes {len(train)}\ntrain_fnv {fnv1a64_bytes(train):016x}\n"
                f"train_sha256 {hashlib.sha256(train).hexdigest()}\n")
    print(f"tokenizer_shakespeare.txt: {len(ids)} tokens; recipe {len(tokens)} tokens, "
          f"val {len(val)} bytes, train {len(train)} bytes")


if __name__ == "__main__":
    main()
