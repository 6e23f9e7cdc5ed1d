// The LLaMA side of ImageBind-LLM on llama.cpp: a loaded model, and sessions (one llama_context each)
// that evaluate prompts, sample, stream tokens and carry their own injection vectors.
#pragma once

#include "llama.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

struct ibl_llm_params {
    int         n_gpu_layers = -1;  // layers on the device (the last ones; -1: all); the rest run on the CPU
    int         n_threads    = 0;   // 0: ibl_threads_default()
    std::string device;             // "" / "auto": every GPU (llama.cpp's default), else the CPU; "cpu"; or a device name
    const std::atomic<bool> *   abort = nullptr;   // set: loading stops with ERR_ABORTED
    std::function<void(float)>  progress;          // 0 … 1 while the weights are read
};

struct ibl_llm {
    std::string         path;
    llama_model *       model = nullptr;
    const llama_vocab * vocab = nullptr;
    int n_embd = 0, n_layer = 0, n_head = 0, n_vocab = 0, n_ctx_train = 0;
    int n_threads = 1;
    bool f32_weights = false;  // general.file_type 0: sessions then default to exact f32 attention
    std::string device;        // where the offloaded layers run ("CPU" when none is offloaded)
    int n_gpu_layers = 0;      // layers offloaded there (n_layer + 1 counts the output layer)
    ~ibl_llm();
};

// Loads an LLM GGUF (architecture `llama`). Errors name the file: missing, not GGUF, another kind of
// GGUF (an encoder or a bind file), or llama.cpp's refusal.
std::unique_ptr<ibl_llm> ibl_llm_load(const std::string & path, const ibl_llm_params & params);

std::vector<llama_token> ibl_llm_tokenize(const ibl_llm & llm, const std::string & text, bool add_bos);
// SentencePiece-style decoding of ids (leading space of the first piece removed; invalid UTF-8 → U+FFFD).
std::string ibl_llm_detokenize(const ibl_llm & llm, const std::vector<llama_token> & ids);

struct ibl_sampling {
    float    temperature    = 0.1f;   // ≤ 0: greedy (argmax)
    float    top_p          = 0.75f;
    int      top_k          = 0;      // 0: off (upstream samples from the top-p nucleus only)
    float    repeat_penalty = 1.0f;   // 1: off
    int      repeat_last_n  = 64;
    uint32_t seed           = 0xFFFFFFFFu;  // LLAMA_DEFAULT_SEED: random
};

struct ibl_generate_params {
    int                      max_tokens = 256;
    ibl_sampling             sampling;
    std::vector<std::string> stop;        // stop strings (not included in the text)
    bool                     keep_step_logits = false;
};

struct ibl_generate_result {
    std::vector<llama_token> tokens;       // generated ids (the end-of-generation token excluded)
    std::string              text;         // exactly the concatenation of the pieces given to on_text
    std::string              stop_reason;  // "eos", "stop", "length", "context", "abort"
    std::vector<float>       step_logits;  // with keep_step_logits: one row of n_vocab per step
};

// Gets the text that became final with a token (often empty) and the token id (-1 for the last
// piece, at the end); returning false stops generation.
using ibl_text_fn = std::function<bool(const std::string &, llama_token)>;

struct ibl_session_params {
    int n_ctx   = 2048;
    int n_batch = 512;
    // KV cache type and flash attention: "auto" picks f32 KV and no flash attention for an f32 model
    // (exact parity with the reference), f16 KV and llama.cpp's default otherwise.
    std::string kv_type    = "auto";   // "auto", "f32", "f16"
    std::string flash_attn = "auto";   // "auto", "on", "off"
    // Diagnostics: record where each layer's injection vector and weights live (injection_placement()).
    bool trace_placement = false;
};

// Where layer il's injection vector and its weights (attn_norm) were read from at the last decode: the
// buffer names ("Vulkan0", "CPU", "CPU_Mapped", …), whether they are host memory, and whether the
// scheduler had to copy the injection vector to another device first (it should never have to).
struct ibl_layer_placement {
    int         layer = 0;
    std::string injection_buffer, weight_buffer;
    bool        injection_host = false, weight_host = false, injection_copied = false;
};

class ibl_llm_session {
public:
    ibl_llm_session(const ibl_llm & llm, const ibl_session_params & params);
    ~ibl_llm_session();
    ibl_llm_session(const ibl_llm_session &) = delete;
    ibl_llm_session & operator=(const ibl_llm_session &) = delete;

    // The per-layer vectors (n_layer × n_embd) added after attention for every token; empty clears.
    void set_injection(const std::vector<float> & d);
    bool has_injection() const { return !injection_.empty(); }

    // Evaluates tokens after what the session already holds (multi-turn: the KV cache is kept). All or
    // nothing: when it fails or is aborted (ERR_ABORTED), the session is as it was before the call.
    // progress(done, total) after each batch.
    void eval(const std::vector<llama_token> & tokens, const std::atomic<bool> * abort_flag = nullptr,
              const std::function<void(int, int)> & progress = nullptr);
    // Logits of the last evaluated token.
    std::vector<float> last_logits() const;

    // Samples up to max_tokens, streaming the text through on_text. An abort ends generation within one
    // decode step with stop_reason "abort" (no exception). Every generated token stays in the
    // conversation, also after "abort", "stop" and "length": the last one enters the KV cache with the
    // next eval() or generate() (continue), so history() and the KV cache always tell the same story.
    ibl_generate_result generate(const ibl_generate_params & p, const ibl_text_fn & on_text,
                                 const std::atomic<bool> * abort_flag = nullptr);

    void reset();  // forget everything (KV cache, history)
    // Forgets everything after the first n tokens of the conversation (n ≤ history().size()).
    void truncate(size_t n);
    int  n_past() const { return n_past_; }
    // Host or device bytes the session's context holds (its KV cache), for the garbage collector.
    size_t memory_bytes() const;
    int  n_ctx() const;
    // The conversation's tokens (prompts and answers), including one not yet in the KV cache.
    const std::vector<llama_token> & history() const { return history_; }
    // With trace_placement, what the last decode with an injection saw (one entry per layer).
    const std::vector<ibl_layer_placement> & injection_placement() const { return placement_; }

private:
    void decode(const std::vector<llama_token> & tokens, const std::atomic<bool> * abort_flag,
                const std::function<void(int, int)> & progress);

    const ibl_llm &          llm_;
    llama_context *          ctx_ = nullptr;
    int                      n_batch_;
    int                      n_ctx_ = 0;
    ggml_type                kv_type_ = GGML_TYPE_F16;   // tokens the session may hold (as asked; llama.cpp may allocate more)
    int                      n_past_ = 0;
    std::vector<llama_token> history_;
    std::vector<llama_token> pending_;   // in history_, not yet in the KV cache
    std::vector<float>       injection_;
    bool                     have_logits_ = false;
    std::vector<ibl_layer_placement> placement_;
    static bool trace_cb(ggml_tensor * t, bool ask, void * user);
};
