// CLIP byte-level BPE text tokenizer, as ImageBind uses it to turn a caption into 77 token ids.
//
// ref: ImageBind imagebind/models/multimodal_preprocessors.py, SimpleTokenizer (copied from
//      openai/CLIP simple_tokenizer.py) and the ImageBind-LLM copy of it.
//
// Pipeline of encode(): UTF-8 text -> ibl_bpe_clean (ftfy subset, HTML-unescape twice, strip,
// whitespace runs -> one space, lower-case) -> ibl_bpe_split (CLIP's pre-tokenisation regex) ->
// byte-level BPE per piece -> ids.  The deviations from upstream (ftfy is not available in C++) are
// listed in ibl_bpe.cpp next to the code that makes them.
//
// Errors: a malformed merge list throws ERR_TOKENIZER_INVALID; text that is not UTF-8 or is longer
// than IBL_BPE_MAX_TEXT_BYTES, a bad context length or an empty row throws ERR_INVALID_ARG.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

constexpr int32_t IBL_BPE_N_MERGES        = 48894;  // 49152 - 256 - 2: merge lines 1 ... 48894 of the file
constexpr int32_t IBL_BPE_N_VOCAB         = 49408;  // 256 byte chars + 256 with "</w>" + merges + 2 specials
constexpr int32_t IBL_BPE_TOKEN_SOT       = 49406;  // <|startoftext|>
constexpr int32_t IBL_BPE_TOKEN_EOT       = 49407;  // <|endoftext|>
constexpr int     IBL_BPE_CONTEXT_LENGTH  = 77;
constexpr size_t  IBL_BPE_MAX_TEXT_BYTES  = (size_t) 1 << 20;  // longer text is refused, not tokenized slowly

// How a row longer than the context is cut (the two upstream copies differ).
enum ibl_bpe_trunc {
    // ImageBind (original): [SOT] + ids cut to context_length - 1, then EOT; a row always ends in EOT.
    IBL_BPE_TRUNC_IMAGEBIND,
    // ImageBind-LLM (what the fixtures use): [SOT] + ids + [EOT] cut to context_length; a long text
    // loses its EOT and the text head then pools the SOT at position 0.
    IBL_BPE_TRUNC_IMAGEBIND_LLM,
};

struct ibl_bpe {
    // `merges`: exactly IBL_BPE_N_MERGES lines "a b" (the merges file without its header line, as
    // the model file stores them). Every part must be a token defined by the byte alphabet or an
    // earlier line, and no merge may repeat a token. Throws ERR_TOKENIZER_INVALID naming the line.
    explicit ibl_bpe(const std::vector<std::string> & merges);

    ibl_bpe(const ibl_bpe &) = delete;
    ibl_bpe & operator=(const ibl_bpe &) = delete;

    // Token ids of `text` without SOT/EOT, untruncated. A literal "<|startoftext|>" or
    // "<|endoftext|>" in the text becomes the special id, as upstream.
    std::vector<int32_t> encode(const std::string & text) const;

    // One row of `context_length` ids: SOT + encode(text) + EOT, cut per `mode`, zero padded.
    std::vector<int32_t> tokenize(const std::string & text, int context_length = IBL_BPE_CONTEXT_LENGTH,
                                  ibl_bpe_trunc mode = IBL_BPE_TRUNC_IMAGEBIND) const;

    // Text of ids (any ids, specials included): byte-decoded, invalid UTF-8 replaced by U+FFFD,
    // "</w>" -> " ", as upstream decode(). Throws ERR_INVALID_ARG for an id outside the vocabulary.
    std::string decode(const std::vector<int32_t> & ids) const;

    // The vocabulary entry of `id` in its byte-to-unicode spelling (e.g. "dog</w>"); "" when out of range.
    const std::string & token_text(int32_t id) const;
    // The id of a vocabulary entry in that spelling, or -1.
    int32_t token_id(const std::string & text) const;

    int32_t n_vocab() const { return (int32_t) vocab.size(); }

  private:
    void bpe_piece(const std::string & piece, std::vector<int32_t> & out) const;
    int32_t pair_rank(int32_t a, int32_t b) const;

    std::vector<std::string>                  vocab;        // id -> byte-to-unicode spelling
    std::vector<std::string>                  vocab_bytes;  // id -> raw bytes it stands for ("</w>" kept literally)
    std::unordered_map<std::string, int32_t>  vocab_ids;    // spelling -> id
    std::unordered_map<uint64_t, int32_t>     ranks;        // (left id << 32 | right id) -> merge rank
    int32_t                                   byte_id[256]; // byte -> id of its byte-to-unicode char

    // Piece -> ids, shared by threads; bounded so that a stream of unique words cannot grow it forever.
    mutable std::mutex                                            cache_mutex;
    mutable std::unordered_map<std::string, std::vector<int32_t>> cache;
};

// Row from already encoded ids (encode() output): what tokenize() does after encoding.
std::vector<int32_t> ibl_bpe_make_row(const std::vector<int32_t> & ids, int context_length, ibl_bpe_trunc mode);

// The position the text head pools: the first maximum id of the row (normally EOT; 0 for a row cut
// before its EOT). Throws ERR_INVALID_ARG for an empty row.
size_t ibl_bpe_pooled_index(const std::vector<int32_t> & row);

// The cleaning steps, exposed for tests. Input must be UTF-8 of at most IBL_BPE_MAX_TEXT_BYTES.
// ref: basic_clean + whitespace_clean + str.lower() in SimpleTokenizer.encode
std::string ibl_bpe_clean(const std::string & text);
// ref: Python html.unescape (HTML5 rules; named references limited to the table in ibl_bpe.cpp)
std::string ibl_bpe_html_unescape(const std::string & text);
// ref: SimpleTokenizer.pat findall, on text that is already cleaned
std::vector<std::string> ibl_bpe_split(const std::string & cleaned);
