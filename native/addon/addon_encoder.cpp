// Bindings: ImageBind encoder objects (load, info, embed), and abort tokens for AbortSignal.
#include "addon_util.h"
#include "ibl_embed.h"
#include "ibl_system.h"
#include "ibl_threads.h"

#include <atomic>
#include <memory>
#include <mutex>

// Set by the JS side when an AbortSignal fires; checked between items and inside ggml's compute loop.
class AbortToken : public Napi::ObjectWrap<AbortToken> {
public:
    static Napi::Function define(Napi::Env env) {
        return DefineClass(env, "AbortToken", {
            InstanceMethod("abort", &AbortToken::abort),
            InstanceAccessor("aborted", &AbortToken::aborted, nullptr),
        });
    }
    AbortToken(const Napi::CallbackInfo & info) : Napi::ObjectWrap<AbortToken>(info), flag(std::make_shared<std::atomic<bool>>(false)) {}
    std::shared_ptr<std::atomic<bool>> flag;

private:
    Napi::Value abort(const Napi::CallbackInfo & info) { flag->store(true); return info.Env().Undefined(); }
    Napi::Value aborted(const Napi::CallbackInfo & info) { return Napi::Boolean::New(info.Env(), flag->load()); }
};

// A loaded model shared by the JS object and any job running on it; jobs on one model run one at a time.
struct encoder_state {
    std::unique_ptr<ibl_model> model;
    std::mutex                 mu;
    ~encoder_state() { model.reset(); ibl_release_free_memory(); }
};


class Encoder : public Napi::ObjectWrap<Encoder> {
public:
    static Napi::Function define(Napi::Env env) {
        return DefineClass(env, "Encoder", {
            InstanceMethod("info", &Encoder::info),
            InstanceMethod("embed", &Encoder::embed),
            InstanceMethod("dispose", &Encoder::dispose),
        });
    }

    Encoder(const Napi::CallbackInfo & info) : Napi::ObjectWrap<Encoder>(info) {
        state_ = ibl_take_external<encoder_state>(info, "Encoder (use loadEncoder())");
        memory_.set(info.Env(), (int64_t) state_->model->weights_bytes);
    }

    ~Encoder() override { release(); }

    static Napi::Value load(const Napi::CallbackInfo & info);

private:
    void release() {
        if (!state_) return;
        memory_.release(Env());
        state_.reset();  // the model is freed now, or when the last running job lets go of it
    }

    std::shared_ptr<encoder_state> live(Napi::Env env) {
        if (!state_) throw ibl_js_error(env, "ERR_DISPOSED", "this encoder has been disposed");
        return state_;
    }

    Napi::Value info(const Napi::CallbackInfo & info);
    Napi::Value embed(const Napi::CallbackInfo & info);
    Napi::Value dispose(const Napi::CallbackInfo & info) { release(); return info.Env().Undefined(); }

    std::shared_ptr<encoder_state> state_;
    ibl_external_memory            memory_;
};

Napi::Value Encoder::load(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) ibl_throw_type(env, "loadEncoder: expected a .gguf path");
    const std::string path = info[0].As<Napi::String>().Utf8Value();
    ibl_model_params params;
    if (info.Length() > 1 && info[1].IsObject()) {
        Napi::Object o = info[1].As<Napi::Object>();
        if (o.Has("threads") && o.Get("threads").IsNumber()) params.n_threads = o.Get("threads").As<Napi::Number>().Int32Value();
        if (o.Has("device") && o.Get("device").IsString()) params.device = o.Get("device").As<Napi::String>().Utf8Value();
        if (o.Has("mmap") && o.Get("mmap").IsBoolean()) params.use_mmap = o.Get("mmap").As<Napi::Boolean>().Value();
    }
    ibl_call_js(env, [&] { return ibl_threads_resolve(params.n_threads); });
    auto flag = ibl_job_flag(env, info, 2);
    ibl_tsfn tsfn = ibl_tsfn_of(env, info, 3, "ibl.loadEncoderProgress");
    using state_ptr = std::shared_ptr<encoder_state>;
    return ibl_promise_worker<state_ptr>::start(env, "ibl.loadEncoder",
        [path, params, flag, tsfn]() mutable {
            params.monitor.abort = flag.get();
            if (tsfn) params.monitor.progress = [tsfn](uint64_t done, uint64_t total) {
                tsfn->NonBlockingCall([done, total](Napi::Env e, Napi::Function cb) {
                    cb.Call({Napi::Number::New(e, total ? (double) done / (double) total : 1.0)});
                });
            };
            auto st = std::make_shared<encoder_state>();
            st->model = ibl_model_load(path, params);
            return st;
        },
        [](Napi::Env e, state_ptr & st) -> Napi::Value {
            auto ext = Napi::External<state_ptr>::New(e, new state_ptr(st), [](Napi::Env, state_ptr * p) { delete p; });
            return ibl_addon(e).encoder_ctor.New({ext});
        },
        nullptr, tsfn, flag);
}

static Napi::Object trunk_info(Napi::Env env, const ibl_model & m, ibl_modality id) {
    const ibl_trunk_hparams & hp = m.mod(id).hp;
    Napi::Object o = Napi::Object::New(env);
    o.Set("embedDim", hp.embed_dim);
    o.Set("blocks", hp.n_blocks);
    o.Set("heads", hp.n_heads);
    o.Set("tokens", hp.num_tokens);
    o.Set("logitScale", hp.logit_scale);
    o.Set("loaded", ibl_model_trunk_loaded(m, id));
    return o;
}

Napi::Value Encoder::info(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    auto st = live(env);
    const ibl_model & m = *st->model;
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", m.path);
    o.Set("name", m.name);
    o.Set("fileType", m.file_type);
    o.Set("outDim", m.out_dim);
    o.Set("device", m.device_name);
    o.Set("threads", m.n_threads);
    o.Set("weightsBytes", Napi::Number::New(env, (double) m.weights_bytes));
    Napi::Object mods = Napi::Object::New(env);
    for (int i = 0; i < IBL_MOD_COUNT; ++i) {
        if (m.mods[i].present) mods.Set(ibl_modality_get((ibl_modality) i).name, trunk_info(env, m, (ibl_modality) i));
    }
    o.Set("modalities", mods);
    if (m.mods[IBL_MOD_VISION].present) {
        Napi::Object v = Napi::Object::New(env);
        v.Set("imageSize", m.vision.image_size);
        v.Set("frames", m.vision.frames);
        v.Set("clipDuration", m.vision.clip_duration);
        v.Set("clipsPerVideo", m.vision.clips_per_video);
        o.Set("video", v);
    }
    if (m.mods[IBL_MOD_POINT].present) {
        Napi::Object pt = Napi::Object::New(env);
        pt.Set("numGroup", m.point.num_group);
        pt.Set("groupSize", m.point.group_size);
        o.Set("point", pt);
    }
    return o;
}

static std::vector<uint8_t> bytes_of(Napi::Env env, Napi::Value v, const std::string & what) {
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
        ibl_throw_type(env, what + ": expected a Uint8Array");
    }
    Napi::Uint8Array a = v.As<Napi::Uint8Array>();
    return std::vector<uint8_t>(a.Data(), a.Data() + a.ByteLength());
}

static std::vector<float> floats_of(Napi::Env env, Napi::Value v, const std::string & what) {
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
        ibl_throw_type(env, what + ": expected a Float32Array");
    }
    Napi::Float32Array a = v.As<Napi::Float32Array>();
    return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
}

// Copies one JS input descriptor into plain C++ data (the worker never touches JS values).

static ibl_input read_input(Napi::Env env, Napi::Value v, uint32_t index) {
    const std::string where = "input " + std::to_string(index);
    if (!v.IsObject()) ibl_throw_type(env, where + ": expected an object");
    Napi::Object o = v.As<Napi::Object>();
    ibl_input in;
    if (!o.Get("modality").IsString()) ibl_throw_type(env, where + ": missing modality");
    const std::string mod = o.Get("modality").As<Napi::String>().Utf8Value();
    in.mod = ibl_modality_from_name(mod);
    if (in.mod == IBL_MOD_COUNT) ibl_throw_type(env, where + ": unknown modality '" + mod + "'");
    if (o.Get("name").IsString()) in.what = o.Get("name").As<Napi::String>().Utf8Value();
    if (o.Get("format").IsString()) in.format = o.Get("format").As<Napi::String>().Utf8Value();
    if (o.Has("tensor") && o.Get("tensor").IsObject()) {
        Napi::Object t = o.Get("tensor").As<Napi::Object>();
        in.tensor = floats_of(env, t.Get("data"), in.what + " tensor data");
        if (!t.Get("shape").IsArray()) ibl_throw_type(env, in.what + ": tensor needs a shape");
        Napi::Array sa = t.Get("shape").As<Napi::Array>();
        for (uint32_t i = 0; i < sa.Length(); ++i) in.tensor_shape.push_back((int64_t) sa.Get(i).As<Napi::Number>().DoubleValue());
        in.is_tensor = true;
    } else if (o.Get("text").IsString()) {
        in.text = o.Get("text").As<Napi::String>().Utf8Value();
    } else if (o.Has("audio") && o.Get("audio").IsObject()) {
        Napi::Object a = o.Get("audio").As<Napi::Object>();
        if (!a.Get("sampleRate").IsNumber() || !a.Get("channels").IsArray()) ibl_throw_type(env, in.what + ": audio needs sampleRate and channels");
        in.sample_rate = a.Get("sampleRate").As<Napi::Number>().Int32Value();
        Napi::Array ch = a.Get("channels").As<Napi::Array>();
        for (uint32_t i = 0; i < ch.Length(); ++i) in.channels.push_back(floats_of(env, ch.Get(i), in.what + " audio channel"));
    } else if (o.Has("clips") && o.Get("clips").IsArray()) {
        Napi::Array clips = o.Get("clips").As<Napi::Array>();
        for (uint32_t c = 0; c < clips.Length(); ++c) {
            if (!clips.Get(c).IsArray()) ibl_throw_type(env, in.what + ": each clip must be an array of frames");
            Napi::Array frames = clips.Get(c).As<Napi::Array>();
            std::vector<ibl_rgb_frame> fs;
            for (uint32_t f = 0; f < frames.Length(); ++f) {
                Napi::Object fo = frames.Get(f).As<Napi::Object>();
                ibl_rgb_frame fr;
                fr.width = fo.Get("width").As<Napi::Number>().Int32Value();
                fr.height = fo.Get("height").As<Napi::Number>().Int32Value();
                fr.rgb = bytes_of(env, fo.Get("rgb"), in.what + " frame");
                if (fr.width <= 0 || fr.height <= 0 || (size_t) fr.width * fr.height * 3 != fr.rgb.size()) {
                    ibl_throw_type(env, in.what + ": frame size does not match width × height × 3");
                }
                fs.push_back(std::move(fr));
            }
            in.clips.push_back(std::move(fs));
        }
    } else if (o.Has("bytes")) {
        in.bytes = bytes_of(env, o.Get("bytes"), in.what);
    } else {
        ibl_throw_type(env, where + ": give bytes, text, audio, clips or tensor");
    }
    return in;
}

Napi::Value Encoder::embed(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    auto st = live(env);
    if (info.Length() < 1 || !info[0].IsArray()) ibl_throw_type(env, "embed: expected an array of inputs");
    Napi::Array arr = info[0].As<Napi::Array>();
    auto inputs = std::make_shared<std::vector<ibl_input>>();
    for (uint32_t i = 0; i < arr.Length(); ++i) inputs->push_back(read_input(env, arr.Get(i), i));
    ibl_embed_options opt;
    if (info.Length() > 1 && info[1].IsObject()) {
        Napi::Object o = info[1].As<Napi::Object>();
        if (o.Get("truncation").IsString()) {
            const std::string t = o.Get("truncation").As<Napi::String>().Utf8Value();
            if (t == "imagebind") opt.truncation = IBL_TRUNCATE_IMAGEBIND;
            else if (t == "imagebind-llm") opt.truncation = IBL_TRUNCATE_IMAGEBIND_LLM;
            else ibl_throw_type(env, "embed: truncation must be 'imagebind' or 'imagebind-llm'");
        }
        if (o.Get("maxBatch").IsNumber()) opt.max_batch = std::max(1, o.Get("maxBatch").As<Napi::Number>().Int32Value());
    }
    auto flag = ibl_job_flag(env, info, 2);
    ibl_tsfn tsfn = ibl_tsfn_of(env, info, 3, "ibl.embedProgress");
    using result_t = std::vector<ibl_embedding>;
    return ibl_promise_worker<result_t>::start(env, "ibl.embed",
        [st, inputs, opt, flag, tsfn] {
            std::lock_guard<std::mutex> lock(st->mu);
            auto progress = [tsfn](int done, int total) {
                if (!tsfn) return;
                tsfn->NonBlockingCall([done, total](Napi::Env e, Napi::Function cb) {
                    cb.Call({Napi::Number::New(e, done), Napi::Number::New(e, total)});
                });
            };
            return ibl_embed(*st->model, *inputs, opt, flag.get(), progress);
        },
        [](Napi::Env e, result_t & res) -> Napi::Value {
            Napi::Array out = Napi::Array::New(e, res.size());
            for (size_t i = 0; i < res.size(); ++i) {
                Napi::Object o = Napi::Object::New(e);
                o.Set("modality", ibl_modality_get(res[i].mod).name);
                o.Set("clips", res[i].n_clips);
                o.Set("raw", ibl_f32_array(e, res[i].raw));
                o.Set("scaled", ibl_f32_array(e, res[i].scaled));
                o.Set("embedding", ibl_f32_array(e, res[i].unit));
                out.Set(i, o);
            }
            return out;
        },
        nullptr, tsfn, flag);
}

std::shared_ptr<std::atomic<bool>> ibl_abort_token_flag(Napi::Env env, Napi::Value v) {
    if (!v.IsObject()) return nullptr;
    Napi::Object tok = v.As<Napi::Object>();
    if (!tok.InstanceOf(ibl_addon(env).abort_token_ctor.Value())) return nullptr;
    return AbortToken::Unwrap(tok)->flag;
}

void ibl_init_encoder(Napi::Env env, Napi::Object exports) {
    Napi::Function enc = Encoder::define(env);
    Napi::Function tok = AbortToken::define(env);
    ibl_addon(env).encoder_ctor = Napi::Persistent(enc);
    ibl_addon(env).abort_token_ctor = Napi::Persistent(tok);
    exports.Set("Encoder", enc);
    exports.Set("AbortToken", tok);
    exports.Set("loadEncoder", Napi::Function::New(env, Encoder::load, "loadEncoder"));
}
