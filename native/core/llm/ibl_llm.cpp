#include "ibl_llm.h"
#include "ibl_threads.h"
#include "ibl_backend.h"
#include "ibl_error.h"
#include "ibl_gguf.h"
#include "ibl_llm_check.h"
#include "ibl_text_stream.h"

#include "gguf.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

ibl_llm::~ibl_llm() {
    if (model) llama_model_free(model);
}

std::unique_ptr<ibl_llm> ibl_llm_load(const std::string & path, const ibl_llm_params & params) {
    ibl_log_init();
    const int n_threads = ibl_threads_resolve(params.n_threads);
    ibl_threads_probe(n_threads);
    // Check the file ourselves first: llama.cpp only logs why it refuses a file, and aborts the process
    // on some files it does not expect.
    ibl_llm_hparams hp;
    {
        ggml_context * tctx = nullptr;
        gguf_context * g = ibl_gguf_open(path, &tctx);
        struct guard { gguf_context * g; ggml_context * t; ~guard() { gguf_free(g); if (t) ggml_free(t); } } gd{g, tctx};
        const std::string arch = ibl_gguf_str(g, path, "general.architecture", false, "");
        if (arch != "llama") {
            ibl_throw("ERR_MODEL_WRONG_TYPE", "%s: not an ImageBind-LLM language model: general.architecture is '%s', expected 'llama'%s",
                      path.c_str(), arch.c_str(),
                      arch == "imagebind" ? " (this is the encoder)" : arch == "imagebind-llm-bind" ? " (this is the bind file)" : "");
        }
        hp = ibl_llm_check(g, tctx, path);
    }
    const bool f32_weights = hp.f32_weights;
    if (params.n_gpu_layers < -1) ibl_throw("ERR_INVALID_ARG", "gpu layers must be -1 (all) or a count ≥ 0 (got %d)", params.n_gpu_layers);
    llama_model_params mp = llama_model_default_params();
    // "auto" keeps llama.cpp's default (every GPU); a named device gets the offloaded layers alone.
    const bool is_auto = params.device.empty() || params.device == "auto" || params.device == "AUTO";
    ggml_backend_dev_t dev = ibl_device_pick(is_auto ? "auto" : params.device, path);
    std::vector<ggml_backend_dev_t> devices;  // null-terminated; must outlive the load
    if (!ibl_device_is_cpu(dev)) devices.push_back(dev);
    devices.push_back(nullptr);
    if (!(is_auto && !ibl_device_is_cpu(dev))) mp.devices = devices.data();
    mp.n_gpu_layers = ibl_device_is_cpu(dev) ? 0 : params.n_gpu_layers;
    // llama.cpp calls this while it reads the weights; returning false stops the load.
    mp.progress_callback = [](float p, void * data) {
        const auto & prm = *(const ibl_llm_params *) data;
        if (prm.abort && prm.abort->load()) return false;
        if (prm.progress) prm.progress(p);
        return true;
    };
    mp.progress_callback_user_data = (void *) &params;
    // Every tensor's data is checked as it is read (NaN/Inf in floats and block scales): an error, not
    // NaN logits.
    mp.check_tensors = true;
    ibl_log_clear_last_error();
    llama_model * model = llama_model_load_from_file(path.c_str(), mp);
    if (!model && params.abort && params.abort->load()) ibl_throw("ERR_ABORTED", "%s: loading aborted", path.c_str());
    if (!model) {
        const std::string why = ibl_log_last_error();
        ibl_throw("ERR_MODEL_INVALID", "%s: llama.cpp could not load the model%s%s", path.c_str(), why.empty() ? "" : ": ", why.c_str());
    }
    auto llm = std::make_unique<ibl_llm>();
    llm->path        = path;
    llm->model       = model;
    llm->vocab       = llama_model_get_vocab(model);
    llm->n_embd      = llama_model_n_embd(model);
    llm->n_layer     = llama_model_n_layer(model);
    llm->n_head      = llama_model_n_head(model);
    llm->n_vocab     = llama_vocab_n_tokens(llm->vocab);
    llm->n_ctx_train = llama_model_n_ctx_train(model);
    llm->n_threads   = n_threads;
    llm->f32_weights = f32_weights;
    llm->device      = ibl_device_is_cpu(dev) ? "CPU" : is_auto ? ibl_gpu_device_names() : ggml_backend_dev_name(dev);
    llm->n_gpu_layers = ibl_device_is_cpu(dev) ? 0 : std::min(params.n_gpu_layers < 0 ? llm->n_layer + 1 : params.n_gpu_layers, llm->n_layer + 1);
    return llm;
}

std::vector<llama_token> ibl_llm_tokenize(const ibl_llm & llm, const std::string & text, bool add_bos) {
    if (text.size() > (1u << 26)) ibl_throw("ERR_INVALID_ARG", "prompt of %zu bytes is too long", text.size());
    std::vector<llama_token> out(text.size() + 8);
    int n = llama_tokenize(llm.vocab, text.data(), (int32_t) text.size(), out.data(), (int32_t) out.size(), add_bos, false);
    if (n < 0) {
        out.resize(-n);
        n = llama_tokenize(llm.vocab, text.data(), (int32_t) text.size(), out.data(), (int32_t) out.size(), add_bos, false);
    }
    if (n < 0) ibl_throw("ERR_TOKENIZE", "tokenization failed");
    out.resize(n);
    return out;
}

std::string ibl_llm_detokenize(const ibl_llm & llm, const std::vector<llama_token> & ids) {
    if (ids.empty()) return "";
    std::string out(ids.size() * 8 + 16, '\0');
    int n = llama_detokenize(llm.vocab, ids.data(), (int32_t) ids.size(), out.data(), (int32_t) out.size(), false, false);
    if (n < 0) {
        out.resize(-n);
        n = llama_detokenize(llm.vocab, ids.data(), (int32_t) ids.size(), out.data(), (int32_t) out.size(), false, false);
    }
    out.resize(std::max(n, 0));
    return ibl_utf8_sanitize(out);
}

// --- session ------------------------------------------------------------------------------------

static bool abort_cb(void * data) {
    const auto * flag = (const std::atomic<bool> *) data;
    return flag && flag->load();
}

ibl_llm_session::ibl_llm_session(const ibl_llm & llm, const ibl_session_params & sp) : llm_(llm), n_batch_(std::max(1, sp.n_batch)) {
    const int n_ctx = sp.n_ctx;
    llama_context_params cp = llama_context_default_params();
    n_ctx_             = std::max(16, n_ctx);
    n_batch_           = std::min(n_batch_, n_ctx_);
    cp.n_ctx           = (uint32_t) n_ctx_;
    cp.n_batch         = (uint32_t) n_batch_;
    const bool exact = llm.f32_weights;
    const std::string kv = sp.kv_type == "auto" ? (exact ? "f32" : "f16") : sp.kv_type;
    if (kv != "f32" && kv != "f16") ibl_throw("ERR_INVALID_ARG", "kv cache type must be auto, f32 or f16 (got '%s')", sp.kv_type.c_str());
    kv_type_ = kv == "f32" ? GGML_TYPE_F32 : GGML_TYPE_F16;
    cp.type_k = cp.type_v = kv_type_;
    if (sp.flash_attn == "on") cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
    else if (sp.flash_attn == "off" || (sp.flash_attn == "auto" && exact)) cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    else if (sp.flash_attn != "auto") ibl_throw("ERR_INVALID_ARG", "flash attention must be auto, on or off (got '%s')", sp.flash_attn.c_str());
    cp.n_ubatch        = cp.n_batch;
    cp.n_seq_max       = 1;
    cp.n_threads       = llm.n_threads;
    cp.n_threads_batch = llm.n_threads;
    cp.no_perf         = true;
    if (sp.trace_placement) {
        cp.cb_eval           = trace_cb;
        cp.cb_eval_user_data = this;
        // Without this the scheduler runs a large batch's ops of the CPU layers on the GPU too, reading
        // copies of their weights and vectors: the trace would then show where ops ran, not where the
        // tensors live.
        cp.op_offload = false;
    }
    ibl_log_clear_last_error();
    ctx_ = llama_init_from_model(llm.model, cp);
    if (!ctx_) {
        const std::string why = ibl_log_last_error();
        ibl_throw("ERR_OUT_OF_MEMORY", "%s: cannot create a context of %d tokens%s%s", llm.path.c_str(), n_ctx, why.empty() ? "" : ": ", why.c_str());
    }
    // llama.cpp may round the context up and caps the batch at it: decode no more per call than it
    // takes, and hold no more tokens than were asked for.
    n_batch_ = std::max(1, std::min(n_batch_, (int) llama_n_batch(ctx_)));
    n_ctx_   = std::min(n_ctx_, (int) llama_n_ctx(ctx_));
}

// Sees every node before it is computed (ask = true) and never asks for its data, so the graph runs
// as usual. Layer il's injection node is "ffn_inp-il" = x + layer_inj-il (patch 0001) and its weights
// are met at "attn_norm-il" = norm · blk.il.attn_norm.weight. When the scheduler had to copy a tensor to
// the node's device, the node reads the copy ("Vulkan0#layer_inj-3#0"), which the name shows.
bool ibl_llm_session::trace_cb(ggml_tensor * t, bool ask, void * user) {
    if (!ask) return false;
    const bool inj_node = strncmp(t->name, "ffn_inp-", 8) == 0;
    const bool norm_node = strncmp(t->name, "attn_norm-", 10) == 0;
    if ((!inj_node && !norm_node) || !t->src[1] || !t->src[1]->buffer) return false;
    const ggml_tensor * src = t->src[1];
    if (inj_node && !strstr(src->name, "layer_inj-")) return false;
    auto * self = (ibl_llm_session *) user;
    const int il = atoi(t->name + (inj_node ? 8 : 10));
    auto & v = self->placement_;
    auto it = std::find_if(v.begin(), v.end(), [&](const ibl_layer_placement & q) { return q.layer == il; });
    if (it == v.end()) {
        v.push_back(ibl_layer_placement{});
        it = v.end() - 1;
        it->layer = il;
    }
    if (inj_node) {
        it->injection_buffer = ggml_backend_buffer_name(src->buffer);
        it->injection_host   = ggml_backend_buffer_is_host(src->buffer);
        it->injection_copied = strncmp(src->name, "layer_inj-", 10) != 0;
    } else {
        it->weight_buffer = ggml_backend_buffer_name(src->buffer);
        it->weight_host   = ggml_backend_buffer_is_host(src->buffer);
    }
    return false;
}

ibl_llm_session::~ibl_llm_session() {
    if (ctx_) llama_free(ctx_);
}

int ibl_llm_session::n_ctx() const { return n_ctx_; }

size_t ibl_llm_session::memory_bytes() const {
    const llama_model * m = llm_.model;
    const size_t kv_per_token = (size_t) llama_model_n_embd(m) / std::max(1, llama_model_n_head(m)) * llama_model_n_head_kv(m) * 2;
    return (size_t) llama_n_ctx(ctx_) * kv_per_token * llama_model_n_layer(m) * ggml_type_size(kv_type_);
}

void ibl_llm_session::set_injection(const std::vector<float> & d) {
    if (!d.empty() && d.size() != (size_t) llm_.n_embd * llm_.n_layer) {
        ibl_throw("ERR_INVALID_ARG", "injection has %zu values, the model needs %d layers × %d", d.size(), llm_.n_layer, llm_.n_embd);
    }
    const int rc = d.empty() ? llama_set_layer_injection(ctx_, nullptr, 0, 0)
                             : llama_set_layer_injection(ctx_, d.data(), llm_.n_embd, llm_.n_layer);
    if (rc != 0) ibl_throw("ERR_INVALID_ARG", "llama.cpp refused the injection vectors");
    injection_ = d;
}

void ibl_llm_session::decode(const std::vector<llama_token> & tokens, const std::atomic<bool> * abort_flag,
                             const std::function<void(int, int)> & progress) {
    const int n_start = n_past_;
    llama_set_abort_callback(ctx_, abort_cb, (void *) abort_flag);
    struct unset { llama_context * c; ~unset() { llama_set_abort_callback(c, nullptr, nullptr); } } u{ctx_};
    for (size_t i = 0; i < tokens.size(); i += n_batch_) {
        const int n = (int) std::min<size_t>(n_batch_, tokens.size() - i);
        llama_batch batch = llama_batch_get_one(const_cast<llama_token *>(tokens.data() + i), n);
        const int rc = (abort_flag && abort_flag->load()) ? 2 : llama_decode(ctx_, batch);
        if (rc != 0) {
            // All or nothing: drop what this call put into the KV cache (a failed or aborted decode may
            // also leave part of its batch there).
            llama_memory_seq_rm(llama_get_memory(ctx_), 0, n_start, -1);
            n_past_ = n_start;
            have_logits_ = false;
            if (abort_flag && abort_flag->load()) ibl_throw("ERR_ABORTED", "evaluation aborted");
            ibl_throw("ERR_DECODE", "llama_decode failed (%d)", rc);
        }
        n_past_ += n;
        if (progress) progress((int) (i + n), (int) tokens.size());
    }
    const float * logits = llama_get_logits_ith(ctx_, -1);
    for (int v = 0; v < llm_.n_vocab; ++v) {
        if (!std::isfinite(logits[v])) {
            llama_memory_seq_rm(llama_get_memory(ctx_), 0, n_start, -1);
            n_past_ = n_start;
            have_logits_ = false;
            ibl_throw("ERR_NON_FINITE", "%s: the model's logits are not finite (its weights or the injected vectors are out of range)", llm_.path.c_str());
        }
    }
    have_logits_ = true;
}

void ibl_llm_session::eval(const std::vector<llama_token> & tokens, const std::atomic<bool> * abort_flag,
                           const std::function<void(int, int)> & progress) {
    if (tokens.empty() && pending_.empty()) return;
    for (llama_token t : tokens) {
        if (t < 0 || t >= llm_.n_vocab) ibl_throw("ERR_INVALID_ARG", "token id %d out of range", t);
    }
    // The answer's last token is part of the conversation but not yet in the KV cache: it goes first.
    std::vector<llama_token> all = pending_;
    all.insert(all.end(), tokens.begin(), tokens.end());
    if (n_past_ + (int) all.size() > n_ctx()) {
        ibl_throw("ERR_CONTEXT_FULL", "%zu more tokens do not fit in the context (%d of %d used)", all.size(), n_past_, n_ctx());
    }
    decode(all, abort_flag, progress);
    pending_.clear();
    history_.insert(history_.end(), tokens.begin(), tokens.end());
}

std::vector<float> ibl_llm_session::last_logits() const {
    if (!have_logits_) ibl_throw("ERR_INVALID_STATE", "no logits: evaluate a prompt first");
    const float * l = llama_get_logits_ith(ctx_, -1);
    return std::vector<float>(l, l + llm_.n_vocab);
}

void ibl_llm_session::reset() {
    llama_memory_clear(llama_get_memory(ctx_), true);
    n_past_ = 0;
    history_.clear();
    pending_.clear();
    have_logits_ = false;
}

void ibl_llm_session::truncate(size_t n) {
    if (n >= history_.size()) return;
    const size_t in_kv = history_.size() - pending_.size();
    if (n < in_kv) {
        llama_memory_seq_rm(llama_get_memory(ctx_), 0, (llama_pos) n, -1);
        n_past_ = (int) n;
        pending_.clear();
        have_logits_ = false;  // the logits belong to a token that is gone
    } else {
        pending_.resize(n - in_kv);
    }
    history_.resize(n);
}

static llama_sampler * make_sampler(const ibl_sampling & s, int n_vocab) {
    llama_sampler * chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
    if (s.repeat_penalty != 1.0f) {
        llama_sampler_chain_add(chain, llama_sampler_init_penalties(n_vocab, s.repeat_last_n, s.repeat_penalty, 0.0f, 0.0f));
    }
    if (s.temperature <= 0.0f) {
        llama_sampler_chain_add(chain, llama_sampler_init_greedy());
        return chain;
    }
    // Upstream divides by the temperature before taking the top-p nucleus (sample_top_p on softmax(l/T)).
    llama_sampler_chain_add(chain, llama_sampler_init_temp(s.temperature));
    if (s.top_k > 0) llama_sampler_chain_add(chain, llama_sampler_init_top_k(s.top_k));
    if (s.top_p < 1.0f) llama_sampler_chain_add(chain, llama_sampler_init_top_p(s.top_p, 1));
    llama_sampler_chain_add(chain, llama_sampler_init_dist(s.seed));
    return chain;
}

// The bytes a token adds to the answer. The first token of an answer loses the leading space that
// SentencePiece's dummy prefix gives it, exactly as llama_detokenize does for a whole sequence.
static std::string token_bytes(const ibl_llm & llm, llama_token tok, bool first) {
    if (first) return [&] {
        std::string out(64, '\0');
        int n = llama_detokenize(llm.vocab, &tok, 1, out.data(), (int32_t) out.size(), false, false);
        if (n < 0) { out.resize(-n); n = llama_detokenize(llm.vocab, &tok, 1, out.data(), (int32_t) out.size(), false, false); }
        out.resize(std::max(n, 0));
        return out;
    }();
    std::string out(64, '\0');
    int n = llama_token_to_piece(llm.vocab, tok, out.data(), (int32_t) out.size(), 0, false);
    if (n < 0) { out.resize(-n); n = llama_token_to_piece(llm.vocab, tok, out.data(), (int32_t) out.size(), 0, false); }
    out.resize(std::max(n, 0));
    return out;
}

ibl_generate_result ibl_llm_session::generate(const ibl_generate_params & p, const ibl_text_fn & on_text,
                                              const std::atomic<bool> * abort_flag) {
    ibl_generate_result res;
    res.stop_reason = "length";
    const auto aborted = [&] { return abort_flag && abort_flag->load(); };
    try {
        if (!pending_.empty()) eval({}, abort_flag);  // after an aborted or stopped turn
    } catch (const ibl_error & e) {
        if (e.code != "ERR_ABORTED") throw;
        res.stop_reason = "abort";
        return res;
    }
    if (!have_logits_) ibl_throw("ERR_INVALID_STATE", "generate: evaluate a prompt first");
    llama_sampler * smpl = make_sampler(p.sampling, llm_.n_vocab);
    struct guard { llama_sampler * s; ~guard() { llama_sampler_free(s); } } g{smpl};
    // Penalties look at what the session already holds.
    for (llama_token t : history_) llama_sampler_accept(smpl, t);

    ibl_text_stream stream(p.stop);
    bool stopped_by_caller = false;
    for (int step = 0; step < p.max_tokens; ++step) {
        if (aborted()) { res.stop_reason = "abort"; break; }
        if (p.keep_step_logits) {
            const float * l = llama_get_logits_ith(ctx_, -1);
            res.step_logits.insert(res.step_logits.end(), l, l + llm_.n_vocab);
        }
        const llama_token tok = llama_sampler_sample(smpl, ctx_, -1);
        if (llama_vocab_is_eog(llm_.vocab, tok)) { res.stop_reason = "eos"; break; }
        // Every sampled token joins the conversation; it enters the KV cache with the next decode.
        res.tokens.push_back(tok);
        history_.push_back(tok);
        pending_.assign(1, tok);
        have_logits_ = false;
        const std::string piece = stream.push(token_bytes(llm_, tok, res.tokens.size() == 1));
        if (on_text && !on_text(piece, tok)) { stopped_by_caller = true; res.stop_reason = "stop"; break; }
        if (stream.stopped()) { res.stop_reason = "stop"; break; }
        if (step + 1 == p.max_tokens) break;
        if (n_past_ + 1 > n_ctx()) { res.stop_reason = "context"; break; }
        try {
            eval({}, abort_flag);
        } catch (const ibl_error & e) {
            if (e.code != "ERR_ABORTED") throw;
            res.stop_reason = "abort";
            break;
        }
    }
    const std::string tail = stream.finish();
    if (on_text && !tail.empty() && !stopped_by_caller) on_text(tail, -1);
    res.text = stream.text();
    return res;
}
