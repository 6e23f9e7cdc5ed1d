// Bindings: the ImageBind-LLM model (LLM + bind network + optional kNN cache) and its sessions.
#include "addon_util.h"
#include "ibl_mmllm.h"
#include "ibl_text_stream.h"
#include "ibl_system.h"
#include "ibl_threads.h"

#include <atomic>
#include <memory>
#include <mutex>

struct llm_state {
    std::unique_ptr<ibl_mmllm> m;
    ~llm_state() { m.reset(); ibl_release_free_memory(); }
};

struct session_state {
    std::shared_ptr<llm_state>       model;  // keeps the model alive while the session exists
    std::unique_ptr<ibl_llm_session> s;
    std::mutex                       mu;
    ~session_state() { s.reset(); ibl_release_free_memory(); }
};

static std::vector<float> read_f32(Napi::Env env, Napi::Value v, const char * what) {
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
        ibl_throw_type(env, std::string(what) + ": expected a Float32Array");
    }
    Napi::Float32Array a = v.As<Napi::Float32Array>();
    return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
}


class LlmSession : public Napi::ObjectWrap<LlmSession> {
public:
    static Napi::Function define(Napi::Env env) {
        return DefineClass(env, "LlmSession", {
            InstanceMethod("setInjection", &LlmSession::set_injection),
            InstanceMethod("eval", &LlmSession::eval),
            InstanceMethod("lastLogits", &LlmSession::last_logits),
            InstanceMethod("generate", &LlmSession::generate),
            InstanceMethod("reset", &LlmSession::reset),
            InstanceMethod("truncate", &LlmSession::truncate),
            InstanceMethod("dispose", &LlmSession::dispose),
            InstanceAccessor("nPast", &LlmSession::n_past, nullptr),
            InstanceAccessor("nCtx", &LlmSession::n_ctx, nullptr),
            InstanceAccessor("nHistory", &LlmSession::n_history, nullptr),
        });
    }
    LlmSession(const Napi::CallbackInfo & info) : Napi::ObjectWrap<LlmSession>(info) {
        st_ = ibl_take_external<session_state>(info, "LlmSession (use model.createSession())");
        memory_.set(info.Env(), (int64_t) st_->s->memory_bytes());
    }
    ~LlmSession() override { release(); }

private:
    std::shared_ptr<session_state> live(Napi::Env env) {
        if (!st_) throw ibl_js_error(env, "ERR_DISPOSED", "this session has been disposed");
        return st_;
    }

    Napi::Value set_injection(const Napi::CallbackInfo & info) {
        auto st = live(info.Env());
        std::vector<float> d;
        if (info.Length() > 0 && !info[0].IsNull() && !info[0].IsUndefined()) d = read_f32(info.Env(), info[0], "setInjection");
        ibl_call_js(info.Env(), [&] { std::lock_guard<std::mutex> l(st->mu); st->s->set_injection(d); return 0; });
        return info.Env().Undefined();
    }

    Napi::Value eval(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        auto st = live(env);
        if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
            ibl_throw_type(env, "eval: expected an Int32Array of token ids");
        }
        Napi::Int32Array a = info[0].As<Napi::Int32Array>();
        auto toks = std::make_shared<std::vector<llama_token>>(a.Data(), a.Data() + a.ElementLength());
        auto flag = ibl_job_flag(env, info, 1);
        ibl_tsfn tsfn = ibl_tsfn_of(env, info, 2, "ibl.llmEvalProgress");
        return ibl_promise_worker<bool>::start(env, "ibl.llmEval",
            [st, toks, flag, tsfn] {
                std::lock_guard<std::mutex> l(st->mu);
                std::function<void(int, int)> progress;
                if (tsfn) progress = [tsfn](int done, int total) {
                    tsfn->NonBlockingCall([done, total](Napi::Env e, Napi::Function cb) {
                        cb.Call({Napi::Number::New(e, done), Napi::Number::New(e, total)});
                    });
                };
                st->s->eval(*toks, flag.get(), progress);
                return true;
            },
            [](Napi::Env e, bool &) -> Napi::Value { return e.Undefined(); },
            nullptr, tsfn, flag);
    }

    Napi::Value last_logits(const Napi::CallbackInfo & info) {
        auto st = live(info.Env());
        return ibl_f32_array(info.Env(), ibl_call_js(info.Env(), [&] { std::lock_guard<std::mutex> l(st->mu); return st->s->last_logits(); }));
    }

    // generate(options, onText?, abortToken?) → {tokens, text, stopReason, stepLogits?}
    Napi::Value generate(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        auto st = live(env);
        ibl_generate_params p;
        if (info.Length() > 0 && info[0].IsObject()) {
            Napi::Object o = info[0].As<Napi::Object>();
            auto num = [&](const char * k, double d) { return o.Get(k).IsNumber() ? o.Get(k).As<Napi::Number>().DoubleValue() : d; };
            p.max_tokens               = (int) num("maxTokens", p.max_tokens);
            p.sampling.temperature     = (float) num("temperature", p.sampling.temperature);
            p.sampling.top_p           = (float) num("topP", p.sampling.top_p);
            p.sampling.top_k           = (int) num("topK", p.sampling.top_k);
            p.sampling.repeat_penalty  = (float) num("repeatPenalty", p.sampling.repeat_penalty);
            p.sampling.repeat_last_n   = (int) num("repeatLastN", p.sampling.repeat_last_n);
            if (o.Get("seed").IsNumber()) p.sampling.seed = (uint32_t) o.Get("seed").As<Napi::Number>().Int64Value();
            p.keep_step_logits = o.Get("stepLogits").IsBoolean() && o.Get("stepLogits").As<Napi::Boolean>().Value();
            if (o.Get("stop").IsArray()) {
                Napi::Array s = o.Get("stop").As<Napi::Array>();
                for (uint32_t i = 0; i < s.Length(); ++i) if (s.Get(i).IsString()) p.stop.push_back(s.Get(i).As<Napi::String>().Utf8Value());
            }
        }
        if (p.max_tokens < 0 || p.max_tokens > (1 << 20)) ibl_throw_type(env, "generate: maxTokens out of range");
        ibl_tsfn tsfn = ibl_tsfn_of(env, info, 1, "ibl.llmToken", 1);
        auto flag = ibl_job_flag(env, info, 2);
        return ibl_promise_worker<ibl_generate_result>::start(env, "ibl.llmGenerate",
            [st, p, tsfn, flag] {
                std::lock_guard<std::mutex> l(st->mu);
                // Blocks until JS has taken the previous piece (a queue of one); a closed queue (the
                // environment is ending) stops generation.
                auto on_text = [tsfn](const std::string & piece, llama_token id) {
                    if (!tsfn) return true;
                    return tsfn->BlockingCall([piece, id](Napi::Env e, Napi::Function cb) {
                        cb.Call({Napi::String::New(e, piece), Napi::Number::New(e, id)});
                    }) == napi_ok;
                };
                return st->s->generate(p, on_text, flag.get());
            },
            [](Napi::Env e, ibl_generate_result & r) -> Napi::Value {
                Napi::Object o = Napi::Object::New(e);
                Napi::Int32Array toks = Napi::Int32Array::New(e, r.tokens.size());
                std::copy(r.tokens.begin(), r.tokens.end(), toks.Data());
                o.Set("tokens", toks);
                o.Set("text", r.text);
                o.Set("stopReason", r.stop_reason);
                if (!r.step_logits.empty()) o.Set("stepLogits", ibl_f32_array(e, r.step_logits));
                return o;
            },
            nullptr, tsfn, flag);
    }

    Napi::Value reset(const Napi::CallbackInfo & info) {
        auto st = live(info.Env());
        ibl_call_js(info.Env(), [&] { std::lock_guard<std::mutex> l(st->mu); st->s->reset(); return 0; });
        return info.Env().Undefined();
    }
    Napi::Value truncate(const Napi::CallbackInfo & info) {
        auto st = live(info.Env());
        if (info.Length() < 1 || !info[0].IsNumber()) ibl_throw_type(info.Env(), "truncate: expected a token count");
        const double n = info[0].As<Napi::Number>().DoubleValue();
        if (!(n >= 0)) ibl_throw_type(info.Env(), "truncate: expected a token count");
        ibl_call_js(info.Env(), [&] { std::lock_guard<std::mutex> l(st->mu); st->s->truncate((size_t) n); return 0; });
        return info.Env().Undefined();
    }
    void release() {
        if (!st_) return;
        memory_.release(Env());
        st_.reset();
    }
    Napi::Value dispose(const Napi::CallbackInfo & info) { release(); return info.Env().Undefined(); }
    Napi::Value n_past(const Napi::CallbackInfo & info) { return Napi::Number::New(info.Env(), live(info.Env())->s->n_past()); }
    Napi::Value n_ctx(const Napi::CallbackInfo & info) { return Napi::Number::New(info.Env(), live(info.Env())->s->n_ctx()); }
    Napi::Value n_history(const Napi::CallbackInfo & info) {
        auto st = live(info.Env());
        std::lock_guard<std::mutex> l(st->mu);
        return Napi::Number::New(info.Env(), (double) st->s->history().size());
    }

    std::shared_ptr<session_state> st_;
    ibl_external_memory            memory_;
};

class LlmModel : public Napi::ObjectWrap<LlmModel> {
public:
    static Napi::Function define(Napi::Env env) {
        return DefineClass(env, "LlmModel", {
            InstanceMethod("info", &LlmModel::info),
            InstanceMethod("tokenize", &LlmModel::tokenize),
            InstanceMethod("detokenize", &LlmModel::detokenize),
            InstanceMethod("visual", &LlmModel::visual),
            InstanceMethod("createSession", &LlmModel::create_session),
            InstanceMethod("dispose", &LlmModel::dispose),
        });
    }
    LlmModel(const Napi::CallbackInfo & info) : Napi::ObjectWrap<LlmModel>(info) {
        st_ = ibl_take_external<llm_state>(info, "LlmModel (use loadLlm())");
        memory_.set(info.Env(), (int64_t) ibl_mmllm_bytes(*st_->m));
    }
    ~LlmModel() override { release(); }

    static Napi::Value load(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        if (info.Length() < 1 || !info[0].IsObject()) ibl_throw_type(env, "loadLlm: expected {model, bind, cache?}");
        Napi::Object o = info[0].As<Napi::Object>();
        ibl_mmllm_paths paths;
        if (!o.Get("model").IsString() || !o.Get("bind").IsString()) ibl_throw_type(env, "loadLlm: model and bind must be file paths");
        paths.llm = o.Get("model").As<Napi::String>().Utf8Value();
        paths.bind = o.Get("bind").As<Napi::String>().Utf8Value();
        if (o.Get("cache").IsString()) paths.cache = o.Get("cache").As<Napi::String>().Utf8Value();
        ibl_llm_params p;
        if (o.Get("threads").IsNumber()) p.n_threads = o.Get("threads").As<Napi::Number>().Int32Value();
        if (o.Get("gpuLayers").IsNumber()) p.n_gpu_layers = o.Get("gpuLayers").As<Napi::Number>().Int32Value();
        if (o.Get("device").IsString()) p.device = o.Get("device").As<Napi::String>().Utf8Value();
        ibl_call_js(env, [&] { return ibl_threads_resolve(p.n_threads); });
        auto flag = ibl_job_flag(env, info, 1);
        ibl_tsfn tsfn = ibl_tsfn_of(env, info, 2, "ibl.loadLlmProgress");
        using ptr = std::shared_ptr<llm_state>;
        return ibl_promise_worker<ptr>::start(env, "ibl.loadLlm",
            [paths, p, flag, tsfn]() mutable {
                p.abort = flag.get();
                if (tsfn) p.progress = [tsfn](float f) {
                    tsfn->NonBlockingCall([f](Napi::Env e, Napi::Function cb) { cb.Call({Napi::Number::New(e, f)}); });
                };
                auto st = std::make_shared<llm_state>();
                st->m = ibl_mmllm_load(paths, p);
                return st;
            },
            [](Napi::Env e, ptr & st) -> Napi::Value {
                auto ext = Napi::External<ptr>::New(e, new ptr(st), [](Napi::Env, ptr * q) { delete q; });
                return ibl_addon(e).llm_model_ctor.New({ext});
            },
            nullptr, tsfn, flag);
    }

private:
    std::shared_ptr<llm_state> live(Napi::Env env) {
        if (!st_) throw ibl_js_error(env, "ERR_DISPOSED", "this model has been disposed");
        return st_;
    }

    Napi::Value info(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        auto st = live(env);
        const ibl_mmllm & m = *st->m;
        Napi::Object o = Napi::Object::New(env);
        o.Set("model", m.llm->path);
        o.Set("bind", m.bind->path);
        o.Set("cache", m.cache ? Napi::Value(Napi::String::New(env, m.cache->path)) : env.Null());
        o.Set("nEmbd", m.llm->n_embd);
        o.Set("nLayer", m.llm->n_layer);
        o.Set("nHead", m.llm->n_head);
        o.Set("nVocab", m.llm->n_vocab);
        o.Set("nCtxTrain", m.llm->n_ctx_train);
        o.Set("inputDim", m.bind->input_dim);
        o.Set("queryLayer", m.bind->query_layer);
        o.Set("bridge", m.bind->bridge);
        o.Set("cacheSize", m.cache ? Napi::Number::New(env, (double) m.cache->count) : Napi::Number::New(env, 0));
        o.Set("device", m.llm->device);
        o.Set("gpuLayers", m.llm->n_gpu_layers);
        return o;
    }

    Napi::Value tokenize(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        auto st = live(env);
        if (info.Length() < 1 || !info[0].IsString()) ibl_throw_type(env, "tokenize: expected a string");
        const bool bos = info.Length() < 2 || !info[1].IsBoolean() || info[1].As<Napi::Boolean>().Value();
        const auto ids = ibl_call_js(env, [&] { return ibl_llm_tokenize(*st->m->llm, info[0].As<Napi::String>().Utf8Value(), bos); });
        Napi::Int32Array a = Napi::Int32Array::New(env, ids.size());
        std::copy(ids.begin(), ids.end(), a.Data());
        return a;
    }

    Napi::Value detokenize(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        auto st = live(env);
        if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
            ibl_throw_type(env, "detokenize: expected an Int32Array");
        }
        Napi::Int32Array a = info[0].As<Napi::Int32Array>();
        std::vector<llama_token> ids(a.Data(), a.Data() + a.ElementLength());
        for (llama_token t : ids) if (t < 0 || t >= st->m->llm->n_vocab) ibl_throw_type(env, "detokenize: token id out of range");
        return Napi::String::New(env, ibl_llm_detokenize(*st->m->llm, ids));
    }

    // visual(embeddings: Float32Array[], weights: number[], cache?: {k, t, weight} | null)
    Napi::Value visual(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        auto st = live(env);
        if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsArray()) ibl_throw_type(env, "visual: expected embeddings and weights arrays");
        auto embs = std::make_shared<std::vector<std::vector<float>>>();
        auto ws = std::make_shared<std::vector<float>>();
        Napi::Array ea = info[0].As<Napi::Array>(), wa = info[1].As<Napi::Array>();
        for (uint32_t i = 0; i < ea.Length(); ++i) embs->push_back(read_f32(env, ea.Get(i), "visual embedding"));
        for (uint32_t i = 0; i < wa.Length(); ++i) ws->push_back((float) wa.Get(i).As<Napi::Number>().DoubleValue());
        std::shared_ptr<ibl_knn_blend_params> cache;
        if (info.Length() > 2 && info[2].IsObject()) {
            Napi::Object c = info[2].As<Napi::Object>();
            cache = std::make_shared<ibl_knn_blend_params>();
            if (c.Get("k").IsNumber()) cache->k = c.Get("k").As<Napi::Number>().Int64Value();
            if (c.Get("t").IsNumber()) cache->t = c.Get("t").As<Napi::Number>().FloatValue();
            if (c.Get("weight").IsNumber()) cache->weight = c.Get("weight").As<Napi::Number>().FloatValue();
        }
        return ibl_promise_worker<ibl_visual>::start(env, "ibl.llmVisual",
            [st, embs, ws, cache] { return ibl_mmllm_visual(*st->m, *embs, *ws, cache.get()); },
            [](Napi::Env e, ibl_visual & r) -> Napi::Value {
                Napi::Object o = Napi::Object::New(e);
                o.Set("mixed", ibl_f32_array(e, r.mixed));
                o.Set("blended", ibl_f32_array(e, r.blended));
                o.Set("visual", ibl_f32_array(e, r.visual));
                o.Set("injection", ibl_f32_array(e, r.injection));
                Napi::Array hits = Napi::Array::New(e, r.hits.size());
                for (size_t i = 0; i < r.hits.size(); ++i) {
                    Napi::Object h = Napi::Object::New(e);
                    h.Set("index", Napi::Number::New(e, (double) r.hits[i].index));
                    h.Set("score", r.hits[i].score);
                    hits.Set(i, h);
                }
                o.Set("hits", hits);
                return o;
            });
    }

    Napi::Value create_session(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        auto st = live(env);
        ibl_session_params sp;
        if (info.Length() > 0 && info[0].IsObject()) {
            Napi::Object o = info[0].As<Napi::Object>();
            if (o.Get("contextSize").IsNumber()) sp.n_ctx = o.Get("contextSize").As<Napi::Number>().Int32Value();
            if (o.Get("batchSize").IsNumber()) sp.n_batch = o.Get("batchSize").As<Napi::Number>().Int32Value();
            if (o.Get("kvType").IsString()) sp.kv_type = o.Get("kvType").As<Napi::String>().Utf8Value();
            if (o.Get("flashAttention").IsString()) sp.flash_attn = o.Get("flashAttention").As<Napi::String>().Utf8Value();
        }
        if (sp.n_ctx < 16 || sp.n_ctx > (1 << 20) || sp.n_batch < 1 || sp.n_batch > (1 << 16)) ibl_throw_type(env, "createSession: contextSize/batchSize out of range");
        using ptr = std::shared_ptr<session_state>;
        return ibl_promise_worker<ptr>::start(env, "ibl.llmSession",
            [st, sp] {
                auto ss = std::make_shared<session_state>();
                ss->model = st;
                ss->s = std::make_unique<ibl_llm_session>(*st->m->llm, sp);
                return ss;
            },
            [](Napi::Env e, ptr & ss) -> Napi::Value {
                auto ext = Napi::External<ptr>::New(e, new ptr(ss), [](Napi::Env, ptr * q) { delete q; });
                return ibl_addon(e).llm_session_ctor.New({ext});
            });
    }

    void release() {
        if (!st_) return;
        memory_.release(Env());
        st_.reset();  // sessions keep the model alive until they are gone too
    }
    Napi::Value dispose(const Napi::CallbackInfo & info) { release(); return info.Env().Undefined(); }

    std::shared_ptr<llm_state> st_;
    ibl_external_memory        memory_;
};


// textStream(pieces: Uint8Array[], stops: string[]) → {chunks: string[], text: string}: the decoder
// generate() streams through, driven with given token bytes (for tests of exact streaming).
static Napi::Value js_text_stream(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsArray()) ibl_throw_type(env, "textStream: expected (pieces, stops)");
    std::vector<std::string> stops;
    Napi::Array sa = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < sa.Length(); ++i) {
        if (!sa.Get(i).IsString()) ibl_throw_type(env, "textStream: stops must be strings");
        stops.push_back(sa.Get(i).As<Napi::String>().Utf8Value());
    }
    ibl_text_stream stream(stops);
    Napi::Array pa = info[0].As<Napi::Array>();
    Napi::Array chunks = Napi::Array::New(env);
    auto add = [&](const std::string & c) { chunks.Set(chunks.Length(), Napi::String::New(env, c)); };
    for (uint32_t i = 0; i < pa.Length() && !stream.stopped(); ++i) {
        Napi::Value v = pa.Get(i);
        if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) ibl_throw_type(env, "textStream: pieces must be Uint8Arrays");
        Napi::Uint8Array a = v.As<Napi::Uint8Array>();
        add(stream.push(std::string((const char *) a.Data(), a.ByteLength())));
    }
    add(stream.finish());
    Napi::Object o = Napi::Object::New(env);
    o.Set("chunks", chunks);
    o.Set("text", Napi::String::New(env, stream.text()));
    return o;
}

void ibl_init_llm(Napi::Env env, Napi::Object exports) {
    exports.Set("textStream", Napi::Function::New(env, js_text_stream, "textStream"));
    Napi::Function model = LlmModel::define(env);
    Napi::Function session = LlmSession::define(env);
    ibl_addon(env).llm_model_ctor = Napi::Persistent(model);
    ibl_addon(env).llm_session_ctor = Napi::Persistent(session);
    exports.Set("LlmModel", model);
    exports.Set("LlmSession", session);
    exports.Set("loadLlm", Napi::Function::New(env, LlmModel::load, "loadLlm"));
}
