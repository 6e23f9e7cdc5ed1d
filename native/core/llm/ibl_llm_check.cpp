#include "ibl_llm_check.h"
#include "ibl_error.h"
#include "ibl_gguf.h"

#include "ggml.h"
#include "gguf.h"

#include <cmath>
#include <cstring>
#include <string>
#include <unordered_set>

// llama.cpp's LLAMA_MAX_LAYERS: per-layer hyperparameter arrays are this long.
static constexpr int LLAMA_MAX_LAYERS_BOUND = 512;

namespace {

// What a tensor of each role may be stored as. Matrices: the float and block-quantized types ggml's
// matmul and get_rows take on every backend; vectors (norms, biases): f32 only.
bool matrix_type_ok(ggml_type t) {
    switch (t) {
        case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16:
        case GGML_TYPE_Q4_0: case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_0: case GGML_TYPE_Q5_1: case GGML_TYPE_Q8_0:
        case GGML_TYPE_Q2_K: case GGML_TYPE_Q3_K: case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: case GGML_TYPE_Q6_K:
        case GGML_TYPE_IQ2_XXS: case GGML_TYPE_IQ2_XS: case GGML_TYPE_IQ2_S: case GGML_TYPE_IQ3_XXS: case GGML_TYPE_IQ3_S:
        case GGML_TYPE_IQ1_S: case GGML_TYPE_IQ1_M: case GGML_TYPE_IQ4_NL: case GGML_TYPE_IQ4_XS:
            return true;
        default:
            return false;
    }
}

struct checker {
    const gguf_context * g;
    const ggml_context * tensors;
    const std::string &  path;
    std::unordered_set<std::string> expected;


    int geti(const char * key, int lo, int hi, bool required = true, int dflt = 0) const {
        return (int) ibl_gguf_int(g, path, key, required, dflt, lo, hi);
    }

    static std::string shape_of(const ggml_tensor * t) {
        std::string s;
        for (int i = 0; i < ggml_n_dims(t); ++i) s += (s.empty() ? "" : ", ") + std::to_string(t->ne[i]);
        return "[" + s + "]";
    }

    // A tensor of the llama schema: present when required, of an allowed type, of the expected shape.
    void tensor(const std::string & name, int64_t ne0, int64_t ne1, bool matrix, bool required) {
        expected.insert(name);
        const ggml_tensor * t = ggml_get_tensor(const_cast<ggml_context *>(tensors), name.c_str());
        if (!t) {
            if (required) ibl_throw("ERR_MODEL_INVALID", "%s: tensor '%s' is missing", path.c_str(), name.c_str());
            return;
        }
        if (matrix ? !matrix_type_ok(t->type) : t->type != GGML_TYPE_F32) {
            ibl_throw("ERR_MODEL_INVALID", "%s: tensor '%s' is stored as %s, which the model cannot use (%s)", path.c_str(), name.c_str(),
                      ggml_type_name(t->type), matrix ? "matrices: f32, f16, bf16 or a block-quantized type" : "norms and biases: f32");
        }
        const bool ok = t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == 1 && t->ne[3] == 1;
        if (!ok) {
            const std::string want = ne1 == 1 ? "[" + std::to_string(ne0) + "]" : "[" + std::to_string(ne0) + ", " + std::to_string(ne1) + "]";
            ibl_throw("ERR_MODEL_INVALID", "%s: tensor '%s' has shape %s, expected %s from the hyperparameters", path.c_str(), name.c_str(),
                      shape_of(t).c_str(), want.c_str());
        }
    }
};

void check_vocab(const gguf_context * g, const std::string & path, int n_vocab) {
    const std::string model = ibl_gguf_str(g, path, "tokenizer.ggml.model", false, "");
    if (model.empty()) ibl_throw("ERR_MODEL_INVALID", "%s: no tokenizer (tokenizer.ggml.model is missing)", path.c_str());
    if (model != "llama") {
        ibl_throw("ERR_MODEL_INVALID", "%s: tokenizer.ggml.model is '%s': ImageBind-LLM uses LLaMA's SentencePiece tokenizer ('llama')",
                  path.c_str(), model.c_str());
    }
    const int64_t id_tokens = gguf_find_key(g, "tokenizer.ggml.tokens");
    if (id_tokens < 0 || gguf_get_kv_type(g, id_tokens) != GGUF_TYPE_ARRAY || gguf_get_arr_type(g, id_tokens) != GGUF_TYPE_STRING) {
        ibl_throw("ERR_MODEL_INVALID", "%s: tokenizer.ggml.tokens is missing or not a string array", path.c_str());
    }
    const size_t n = gguf_get_arr_n(g, id_tokens);
    if (n != (size_t) n_vocab) {
        ibl_throw("ERR_MODEL_INVALID", "%s: the tokenizer has %zu tokens, but token_embd has %d rows", path.c_str(), n, n_vocab);
    }
    std::unordered_set<std::string> seen;
    seen.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        const char * s = gguf_get_arr_str(g, id_tokens, i);
        if (!seen.insert(s).second) {
            ibl_throw("ERR_MODEL_INVALID", "%s: token %zu ('%.40s') appears twice in tokenizer.ggml.tokens", path.c_str(), i, s);
        }
    }
    const int64_t id_scores = gguf_find_key(g, "tokenizer.ggml.scores");
    if (id_scores >= 0) {
        if (gguf_get_kv_type(g, id_scores) != GGUF_TYPE_ARRAY || gguf_get_arr_type(g, id_scores) != GGUF_TYPE_FLOAT32 || gguf_get_arr_n(g, id_scores) != n) {
            ibl_throw("ERR_MODEL_INVALID", "%s: tokenizer.ggml.scores must hold one f32 per token", path.c_str());
        }
        const float * sc = (const float *) gguf_get_arr_data(g, id_scores);
        for (size_t i = 0; i < n; ++i) {
            if (!std::isfinite(sc[i])) ibl_throw("ERR_MODEL_INVALID", "%s: tokenizer.ggml.scores[%zu] is not finite", path.c_str(), i);
        }
    }
    const int64_t id_types = gguf_find_key(g, "tokenizer.ggml.token_type");
    if (id_types >= 0) {
        if (gguf_get_kv_type(g, id_types) != GGUF_TYPE_ARRAY || gguf_get_arr_type(g, id_types) != GGUF_TYPE_INT32 || gguf_get_arr_n(g, id_types) != n) {
            ibl_throw("ERR_MODEL_INVALID", "%s: tokenizer.ggml.token_type must hold one i32 per token", path.c_str());
        }
        const int32_t * tt = (const int32_t *) gguf_get_arr_data(g, id_types);
        for (size_t i = 0; i < n; ++i) {
            // LLAMA_TOKEN_TYPE_NORMAL (1) … BYTE (6); 0 (undefined) is tolerated by llama.cpp.
            if (tt[i] < 0 || tt[i] > 6) ibl_throw("ERR_MODEL_INVALID", "%s: tokenizer.ggml.token_type[%zu] = %d is not a token type", path.c_str(), i, tt[i]);
        }
    }
    for (const char * key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
                             "tokenizer.ggml.padding_token_id", "tokenizer.ggml.seperator_token_id"}) {
        // -1 (none) or an id of the vocabulary.
        ibl_gguf_int(g, path, key, false, -1, -1, n_vocab - 1);
    }
}

}  // namespace

ibl_llm_hparams ibl_llm_check(const gguf_context * g, const ggml_context * tensors, const std::string & path) {
    checker c{g, tensors, path, {}};
    ibl_llm_hparams hp;
    hp.n_embd    = c.geti("llama.embedding_length", 1, 1 << 16);
    hp.n_layer   = c.geti("llama.block_count", 1, LLAMA_MAX_LAYERS_BOUND);
    hp.n_head    = c.geti("llama.attention.head_count", 1, hp.n_embd);
    hp.n_head_kv = c.geti("llama.attention.head_count_kv", 1, hp.n_head, false, hp.n_head);
    hp.n_ff      = c.geti("llama.feed_forward_length", 1, 1 << 20);
    hp.n_ctx_train = c.geti("llama.context_length", 1, 1 << 24);
    if (hp.n_embd % hp.n_head != 0) {
        ibl_throw("ERR_MODEL_INVALID", "%s: embedding_length %d is not a multiple of head_count %d", path.c_str(), hp.n_embd, hp.n_head);
    }
    if (hp.n_head % hp.n_head_kv != 0) {
        ibl_throw("ERR_MODEL_INVALID", "%s: head_count %d is not a multiple of head_count_kv %d", path.c_str(), hp.n_head, hp.n_head_kv);
    }
    const int head_dim = hp.n_embd / hp.n_head;
    hp.n_rot = c.geti("llama.rope.dimension_count", 2, head_dim, false, head_dim);
    if (hp.n_rot % 2 != 0) ibl_throw("ERR_MODEL_INVALID", "%s: llama.rope.dimension_count %d is odd", path.c_str(), hp.n_rot);
    ibl_gguf_float(g, path, "llama.attention.layer_norm_rms_epsilon", true, 0, 1e-12, 1);
    ibl_gguf_float(g, path, "llama.rope.freq_base", false, 10000, 1e-3, 1e12);
    hp.f32_weights = ibl_gguf_int(g, path, "general.file_type", false, 1, 0, 1 << 20) == 0;

    const ggml_tensor * embd = ggml_get_tensor(const_cast<ggml_context *>(tensors), "token_embd.weight");
    if (!embd) ibl_throw("ERR_MODEL_INVALID", "%s: tensor 'token_embd.weight' is missing", path.c_str());
    if (embd->ne[1] < 3 || embd->ne[1] > (1 << 22)) {
        ibl_throw("ERR_MODEL_INVALID", "%s: token_embd.weight has %lld rows: a vocabulary of 3 … 4194304 tokens", path.c_str(), (long long) embd->ne[1]);
    }
    hp.n_vocab = (int) embd->ne[1];
    check_vocab(g, path, hp.n_vocab);

    const int64_t E = hp.n_embd, F = hp.n_ff, V = hp.n_vocab, Q = (int64_t) head_dim * hp.n_head, KV = (int64_t) head_dim * hp.n_head_kv;
    c.tensor("token_embd.weight", E, V, true, true);
    c.tensor("output_norm.weight", E, 1, false, true);
    c.tensor("output.weight", E, V, true, false);  // absent: tied to the embeddings
    c.tensor("rope_freqs.weight", hp.n_rot / 2, 1, false, false);
    for (int il = 0; il < hp.n_layer; ++il) {
        const std::string b = "blk." + std::to_string(il) + ".";
        c.tensor(b + "attn_norm.weight", E, 1, false, true);
        c.tensor(b + "attn_q.weight", E, Q, true, true);
        c.tensor(b + "attn_k.weight", E, KV, true, true);
        c.tensor(b + "attn_v.weight", E, KV, true, true);
        c.tensor(b + "attn_output.weight", Q, E, true, true);
        c.tensor(b + "ffn_norm.weight", E, 1, false, true);
        c.tensor(b + "ffn_gate.weight", E, F, true, true);
        c.tensor(b + "ffn_down.weight", F, E, true, true);
        c.tensor(b + "ffn_up.weight", E, F, true, true);
        c.tensor(b + "attn_q.bias", Q, 1, false, false);
        c.tensor(b + "attn_k.bias", KV, 1, false, false);
        c.tensor(b + "attn_v.bias", KV, 1, false, false);
        c.tensor(b + "attn_output.bias", E, 1, false, false);
        c.tensor(b + "ffn_gate.bias", F, 1, false, false);
        c.tensor(b + "ffn_down.bias", E, 1, false, false);
        c.tensor(b + "ffn_up.bias", F, 1, false, false);
    }
    for (int64_t i = 0; i < gguf_get_n_tensors(g); ++i) {
        const std::string name = gguf_get_tensor_name(g, i);
        if (!c.expected.count(name)) {
            ibl_throw("ERR_MODEL_INVALID", "%s: tensor '%s' is not part of a llama model of %d layers", path.c_str(), name.c_str(), hp.n_layer);
        }
    }
    return hp;
}
