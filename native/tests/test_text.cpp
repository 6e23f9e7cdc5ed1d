// CLIP BPE tokenizer against the fixtures' text case (tiny-a/inputs/text.npy, manifest "text"),
// plus hand-checked cleaning, splitting, HTML, BPE and error cases. The merges come from the
// gunzipped merges file named by IBL_BPE_MERGES (header line included, as shipped).
#include "ibl_bpe.h"
#include "ibl_test.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

static std::string join_ids(const std::vector<int32_t> & v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s;
}

static std::string strip_spaces(std::string s) {
    s.erase(std::remove(s.begin(), s.end(), ' '), s.end());
    return s;
}

// Merge lines 1 ... IBL_BPE_N_MERGES (line 0 is the version header), as the converter stores them.
static bool read_merges(ibl_test & t, std::vector<std::string> & merges) {
    const char * path = std::getenv("IBL_BPE_MERGES");
    if (!path || !*path) {
        return t.check(false, "text: IBL_BPE_MERGES is not set (the gunzipped clip_bpe/bpe_simple_vocab_16e6.txt.gz)");
    }
    std::ifstream f(path, std::ios::binary);
    std::string line;
    bool header = true;
    while (f && (int) merges.size() < IBL_BPE_N_MERGES && std::getline(f, line)) {
        if (header) {
            header = false;
            continue;
        }
        merges.push_back(line);
    }
    return t.check((int) merges.size() == IBL_BPE_N_MERGES,
                   std::string("text: read ") + std::to_string(merges.size()) + " merges from " + path);
}

static void test_fixture_rows(ibl_test & t, const ibl_bpe & tok) {
    std::ifstream mf(t.tiny("manifest.json"));
    const nlohmann::json manifest = nlohmann::json::parse(mf);
    nlohmann::json strings;
    for (const auto & c : manifest.at("imagebind_cases")) {
        if (c.at("name") == "text") strings = c.at("strings");
    }
    if (!t.check(strings.size() == 5, "text: manifest lists 5 strings")) return;

    const ibl_npy npy = ibl_npy_load(t.tiny("inputs/text.npy"));
    const std::vector<int64_t> expected = npy.to_i64();
    if (!t.check(npy.shape == std::vector<int64_t>({5, 77}), "text: text.npy is (5, 77)")) return;

    for (size_t i = 0; i < strings.size(); ++i) {
        const std::string text = strings[i].at("text");
        const std::string name = "text[" + std::to_string(i) + "] '" + text.substr(0, 24) + "'";
        const std::vector<int32_t> ids = tok.encode(text);
        const std::vector<int32_t> row = ibl_bpe_make_row(ids, 77, IBL_BPE_TRUNC_IMAGEBIND_LLM);
        const std::vector<int32_t> exp(expected.begin() + i * 77, expected.begin() + (i + 1) * 77);
        t.check(row == exp, name + ": IMAGEBIND_LLM row equals text.npy" + (row == exp ? "" : " (got " + join_ids(row) + ")"));
        t.check(tok.tokenize(text, 77, IBL_BPE_TRUNC_IMAGEBIND_LLM) == row, name + ": tokenize() = encode() + make_row()");
        t.check((int64_t) ids.size() + 2 == strings[i].at("untruncated_length").get<int64_t>(),
                name + ": untruncated length " + std::to_string(ids.size() + 2));
        const bool eot = std::find(row.begin(), row.end(), IBL_BPE_TOKEN_EOT) != row.end();
        t.check(eot == strings[i].at("eot_present").get<bool>(), name + ": end token present = manifest");
        t.check((int64_t) ibl_bpe_pooled_index(row) == strings[i].at("pooled_position").get<int64_t>(),
                name + ": pooled position " + std::to_string(ibl_bpe_pooled_index(row)));

        const std::vector<int32_t> orig = tok.tokenize(text);  // default: ImageBind's truncation
        if (strings[i].at("truncated").get<bool>()) {
            t.check(orig[76] == IBL_BPE_TOKEN_EOT && std::equal(orig.begin(), orig.begin() + 76, row.begin()) &&
                        ibl_bpe_pooled_index(orig) == 76,
                    name + ": IMAGEBIND row keeps 76 tokens, ends in EOT at 76 and pools it");
        } else {
            t.check(orig == row, name + ": IMAGEBIND row = IMAGEBIND_LLM row when it fits");
        }
    }
}

static void test_cleaning(ibl_test & t) {
    struct kase { const char * in; const char * out; const char * what; };
    const kase cases[] = {
        {"  Tom &amp;amp;  JERRY\t\n ", "tom & jerry", "strip, unescape, collapse, lower"},
        {"<b> &amp;amp;amp;", "<b> &amp;", "a '<' turns ftfy's unescaping off: only html.unescape twice"},
        {"a &amp;amp;amp;amp;", "a &", "no '<': ftfy unescapes complete references until nothing changes"},
        {"\xE2\x80\x9CJerry\xE2\x80\x99s\xE2\x80\x9D \xEF\xAC\x81sh", "\"jerry's\" fish", "ftfy: curly quotes, ligature"},
        {"\xEF\xBC\xA1\xEF\xBC\xA2\xEF\xBC\xA3\xE3\x80\x80x", "abc x", "ftfy: full-width letters and ideographic space"},
        {"a\x01""b\x1B[31mc\xC2\x85", "abc\xE2\x80\xA6", "ftfy: control chars, terminal escape, C1 as Windows-1252"},
        {"\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3 \xCE\xA3\xCE\x91", "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82 \xCF\x83\xCE\xB1", "lower: final sigma"},
        {"\xC4\xB0stanbul", "i\xCC\x87stanbul", "lower: U+0130 becomes i + U+0307"},
        {"\xC2\xA0x\xE2\x80\x83y\xE3\x80\x80", "x y", "Unicode whitespace"},
        {"&EACUTE; &notit;", "\xC3\xA9 \xC2\xAC" "it;", "ftfy all-caps entity; legacy prefix"},
        {"", "", "empty"},
    };
    for (const kase & k : cases) {
        const std::string got = ibl_bpe_clean(k.in);
        t.check(got == k.out, std::string("text clean: ") + k.what + (got == k.out ? "" : " (got '" + got + "')"));
    }

    const kase html[] = {
        {"&lt;b&gt;", "<b>", ""}, {"&amp", "&", ""}, {"&ampx", "&x", ""}, {"&#65;&#x42;&#X43", "ABC", ""},
        {"&#0;", "\xEF\xBF\xBD", ""}, {"&#128;", "\xE2\x82\xAC", ""}, {"&#xD800;", "\xEF\xBF\xBD", ""}, {"&#1;", "", ""},
        {"&nosuch;", "&nosuch;", ""}, {"&notit;", "\xC2\xAC" "it;", ""}, {"&#99999999999999999999;", "\xEF\xBF\xBD", ""},
        {"&#x;", "&#x;", ""}, {"&#;", "&#;", ""}, {"&Eacute&eacute;", "\xC3\x89\xC3\xA9", ""}, {"&amp;amp;", "&amp;", ""},
    };
    for (const kase & k : html) {  // expected values are CPython 3.11 html.unescape
        const std::string got = ibl_bpe_html_unescape(k.in);
        t.check(got == k.out, std::string("text html.unescape '") + k.in + "'" + (got == k.out ? "" : " (got '" + got + "')"));
    }
}

static void test_split(ibl_test & t) {
    struct kase { const char * in; std::vector<std::string> out; };
    const kase cases[] = {
        {"tom & jerry's 3 cats, 12 dogs: 100% fun!? (v2.0)",
         {"tom", "&", "jerry", "'s", "3", "cats", ",", "1", "2", "dogs", ":", "1", "0", "0", "%", "fun", "!?", "(", "v", "2", ".", "0", ")"}},
        {"x<|endoftext|>y", {"x", "<|endoftext|>", "y"}},
        {"(<|endoftext|>", {"(<|", "endoftext", "|>"}},
        {"''s 're' 'second", {"''", "s", "'re", "'", "'s", "econd"}},
        {"a\xCD\x85" "b \xC2\xB2\xC2\xBD", {"a", "b", "\xC2\xB2", "\xC2\xBD"}},  // U+0345 is skipped; ² ½ are numbers
        {"'\xC5\xBFx", {"'\xC5\xBF", "x"}},  // 'ſ matches 's under IGNORECASE
    };
    for (const kase & k : cases) {
        const std::vector<std::string> got = ibl_bpe_split(k.in);
        std::string s;
        for (const auto & p : got) s += "[" + p + "]";
        t.check(got == k.out, std::string("text split '") + k.in + "' -> " + s);
    }
}

static void test_bpe(ibl_test & t, const ibl_bpe & tok) {
    t.check(tok.n_vocab() == IBL_BPE_N_VOCAB && tok.token_text(IBL_BPE_TOKEN_SOT) == "<|startoftext|>" &&
                tok.token_text(IBL_BPE_TOKEN_EOT) == "<|endoftext|>",
            "text: 49408 tokens, specials at 49406/49407");
    // byte alphabet: '!' is entry 0, 'a' entry 64, 'a</w>' 320; space (not printable) is U+0120 'Ġ'
    t.check(tok.token_id("!") == 0 && tok.token_id("a") == 64 && tok.token_id("a</w>") == 320 &&
                tok.token_text(220) == "\xC4\xA0" && tok.token_id("in") == 512,
            "text: byte-to-unicode vocabulary order");
    t.check(tok.encode("<|endoftext|>") == std::vector<int32_t>({IBL_BPE_TOKEN_EOT}) &&
                tok.encode("a <|startoftext|>") == std::vector<int32_t>({320, IBL_BPE_TOKEN_SOT}),
            "text: literal special tokens map to their ids, as upstream");
    t.check(tok.encode("").empty() && tok.tokenize("") == std::vector<int32_t>(
                {IBL_BPE_TOKEN_SOT, IBL_BPE_TOKEN_EOT, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
            "text: empty text -> [SOT, EOT, 0...]");

    // decode(encode(x)) is the cleaned text with a space after every word piece
    const char * texts[] = {"Hello, World!", "Tom &amp; Jerry's 3 cats", "Cr\xC3\xA8me br\xC3\xBBl\xC3\xA9" "e \xE2\x80\x94 na\xC3\xAFve caf\xC3\xA9 3\xE2\x82\xAC",
                            "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xA8 emoji \xF0\x9F\x90\xB6\xF0\x9F\x9A\x97",
                            "supercalifragilisticexpialidocious antidisestablishmentarianism"};
    for (const char * x : texts) {
        const std::vector<int32_t> ids = tok.encode(x);
        const std::string back = tok.decode(ids);
        const std::string clean = ibl_bpe_clean(x);
        t.check(!ids.empty() && strip_spaces(back) == strip_spaces(clean) && back.back() == ' ',
                std::string("text decode(encode('") + x + "')) = '" + back + "' (" + std::to_string(ids.size()) + " ids)");
    }
    // every word ends in a "</w>" token; "hello," is two pieces: hello</w> ,</w>
    const std::vector<int32_t> hw = tok.encode("Hello, World!");
    std::string spelled;
    for (int32_t id : hw) spelled += "[" + tok.token_text(id) + "]";
    t.check(spelled == "[hello</w>][,</w>][world</w>][!</w>]", "text: 'Hello, World!' -> " + spelled + " = " + join_ids(hw));
    t.check(tok.decode({IBL_BPE_TOKEN_SOT, 320, IBL_BPE_TOKEN_EOT}) == "<|startoftext|>a <|endoftext|>", "text: decode keeps specials");
    t.check(tok.decode({tok.token_id("\xC3\xA2")}) == "\xEF\xBF\xBD", "text: decode of a lone UTF-8 lead byte -> U+FFFD");

    // truncation modes on a row that is too long, and tiny contexts
    const std::vector<int32_t> ids(100, 320);
    const std::vector<int32_t> a = ibl_bpe_make_row(ids, 77, IBL_BPE_TRUNC_IMAGEBIND);
    const std::vector<int32_t> b = ibl_bpe_make_row(ids, 77, IBL_BPE_TRUNC_IMAGEBIND_LLM);
    t.check(a[0] == IBL_BPE_TOKEN_SOT && a[75] == 320 && a[76] == IBL_BPE_TOKEN_EOT && b[76] == 320 &&
                ibl_bpe_pooled_index(a) == 76 && ibl_bpe_pooled_index(b) == 0,
            "text: long row: IMAGEBIND ends in EOT, IMAGEBIND_LLM pools SOT at 0");
    t.check(ibl_bpe_make_row(ids, 1, IBL_BPE_TRUNC_IMAGEBIND) == std::vector<int32_t>({IBL_BPE_TOKEN_EOT}) &&
                ibl_bpe_make_row(ids, 1, IBL_BPE_TRUNC_IMAGEBIND_LLM) == std::vector<int32_t>({IBL_BPE_TOKEN_SOT}),
            "text: context length 1 as upstream slicing gives");

    // a 1 MB single word: the heap BPE is O(n log n), upstream's loop would take hours
    std::string big;
    while (big.size() + 10 <= IBL_BPE_MAX_TEXT_BYTES) big += "abcdefghij";
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<int32_t> big_ids = tok.encode(big);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    t.check(!big_ids.empty() && tok.decode(big_ids) == big + " " && secs < 20,
            "text: 1 MB word -> " + std::to_string(big_ids.size()) + " ids in " + std::to_string(secs) + " s");

    // the piece cache is shared between threads
    const std::string caption = "A very long caption with many words: a golden retriever and a red collar.";
    const std::vector<int32_t> ref = tok.encode(caption);
    bool same[4] = {false, false, false, false};
    std::vector<std::thread> threads;
    for (int k = 0; k < 4; ++k) {
        threads.emplace_back([&, k] {
            bool ok = true;
            for (int r = 0; r < 200; ++r) ok &= tok.encode(caption + " " + std::to_string(r % 7)).size() >= ref.size();
            same[k] = ok && tok.encode(caption) == ref;
        });
    }
    for (auto & th : threads) th.join();
    t.check(same[0] && same[1] && same[2] && same[3], "text: encode from 4 threads at once");
}

static void test_errors(ibl_test & t, const std::vector<std::string> & merges, const ibl_bpe & tok) {
    t.check_throws([&] { ibl_bpe bad(std::vector<std::string>(merges.begin(), merges.begin() + 10)); },
                   "ERR_TOKENIZER_INVALID", "expected 48894 merges", "text: too few merges");
    std::vector<std::string> m = merges;
    m[5] = "in";
    t.check_throws([&] { ibl_bpe bad(m); }, "ERR_TOKENIZER_INVALID", "merge 6 is not two tokens", "text: merge line without a space");
    m = merges;
    m[7] = "i  n";
    t.check_throws([&] { ibl_bpe bad(m); }, "ERR_TOKENIZER_INVALID", "merge 8", "text: merge line with two spaces");
    m = merges;
    m[3] = "zzz q";
    t.check_throws([&] { ibl_bpe bad(m); }, "ERR_TOKENIZER_INVALID", "no earlier merge made", "text: merge of an unknown token");
    m = merges;
    m[100] = merges[0];
    t.check_throws([&] { ibl_bpe bad(m); }, "ERR_TOKENIZER_INVALID", "already exists", "text: repeated merge");

    t.check_throws([&] { tok.encode("caf\xC3"); }, "ERR_INVALID_ARG", "not valid UTF-8", "text: truncated UTF-8");
    t.check_throws([&] { tok.encode("\xED\xA0\x80"); }, "ERR_INVALID_ARG", "not valid UTF-8", "text: encoded surrogate");
    t.check_throws([&] { tok.encode("\xC0\xAF"); }, "ERR_INVALID_ARG", "not valid UTF-8", "text: overlong UTF-8");
    const std::string too_long(IBL_BPE_MAX_TEXT_BYTES + 1, 'a');
    t.check_throws([&] { tok.encode(too_long); }, "ERR_INVALID_ARG", "at most 1048576 bytes", "text: text over 1 MB");
    t.check_throws([&] { tok.tokenize("a", 0); }, "ERR_INVALID_ARG", "context length", "text: context length 0");
    t.check_throws([&] { tok.tokenize("a", 77, (ibl_bpe_trunc) 7); }, "ERR_INVALID_ARG", "truncation mode", "text: unknown mode");
    t.check_throws([&] { tok.decode({IBL_BPE_N_VOCAB}); }, "ERR_INVALID_ARG", "outside the CLIP vocabulary", "text: decode of a bad id");
    t.check_throws([&] { ibl_bpe_pooled_index({}); }, "ERR_INVALID_ARG", "empty", "text: pooling an empty row");
}

void test_text(ibl_test & t) {
    test_cleaning(t);
    test_split(t);
    std::vector<std::string> merges;
    if (!read_merges(t, merges)) return;
    const ibl_bpe tok(merges);
    test_fixture_rows(t, tok);
    test_bpe(t, tok);
    test_errors(t, merges, tok);
}
