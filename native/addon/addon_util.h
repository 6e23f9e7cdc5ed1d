// N-API plumbing shared by every binding: core errors → JS Errors with `code`, and a promise-returning
// worker that runs core work off the JS thread (the baton: inputs copied into plain C++ data before
// Execute(), the JS result built in OnOK).
#pragma once

#include "ibl_error.h"

#include <napi.h>

#include <algorithm>
#include <functional>
#include <vector>
#include <string>

inline Napi::Error ibl_js_error(Napi::Env env, const std::string & code, const std::string & msg) {
    Napi::Error err = Napi::Error::New(env, msg);
    err.Set("code", Napi::String::New(env, code));
    return err;
}

[[noreturn]] inline void ibl_throw_type(Napi::Env env, const std::string & what) {
    Napi::TypeError err = Napi::TypeError::New(env, what);
    err.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
    throw err;
}

template <typename R>
class ibl_promise_worker : public Napi::AsyncWorker {
public:
    using work_fn  = std::function<R()>;
    using to_js_fn = std::function<Napi::Value(Napi::Env, R &)>;

    // `on_error` (optional) runs on the JS thread when the work failed, before the promise rejects.
    static Napi::Promise start(Napi::Env env, const char * name, work_fn work, to_js_fn to_js,
                               std::function<void()> on_error = nullptr) {
        auto * w = new ibl_promise_worker(env, name, std::move(work), std::move(to_js));
        w->on_error_ = std::move(on_error);
        Napi::Promise p = w->deferred_.Promise();
        w->Queue();
        return p;
    }

protected:
    void Execute() override {
        try {
            result_ = work_();
        } catch (const ibl_error & e) {
            code_ = e.code;
            SetError(e.what());
        } catch (const std::bad_alloc &) {
            code_ = "ERR_OUT_OF_MEMORY";
            SetError("out of memory");
        } catch (const std::exception & e) {
            code_ = "ERR_NATIVE";
            SetError(e.what());
        }
    }
    void OnOK() override {
        Napi::Env env = Env();
        try {
            deferred_.Resolve(to_js_(env, result_));
        } catch (const Napi::Error & e) {
            deferred_.Reject(e.Value());
        }
    }
    void OnError(const Napi::Error & e) override {
        if (on_error_) on_error_();
        deferred_.Reject(ibl_js_error(Env(), code_, e.Message()).Value());
    }

private:
    ibl_promise_worker(Napi::Env env, const char * name, work_fn work, to_js_fn to_js)
        : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)),
          work_(std::move(work)), to_js_(std::move(to_js)) {}

    Napi::Promise::Deferred deferred_;
    work_fn                 work_;
    to_js_fn                to_js_;
    std::function<void()>   on_error_;
    R                       result_{};
    std::string             code_ = "ERR_NATIVE";
};

inline Napi::Float32Array ibl_f32_array(Napi::Env env, const std::vector<float> & v) {
    Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
    std::copy(v.begin(), v.end(), a.Data());
    return a;
}

// Runs `fn` and converts a core exception thrown on the JS thread into a JS exception.
template <typename F>
auto ibl_call_js(Napi::Env env, F && fn) -> decltype(fn()) {
    try {
        return fn();
    } catch (const ibl_error & e) {
        throw ibl_js_error(env, e.code, e.what());
    } catch (const Napi::Error &) {
        throw;
    } catch (const std::exception & e) {
        throw ibl_js_error(env, "ERR_NATIVE", e.what());
    }
}

// Per-environment state (worker threads each load their own instance): constructors of the classes
// the addon creates from native code.
struct ibl_addon_data {
    Napi::FunctionReference encoder_ctor, abort_token_ctor, llm_model_ctor, llm_session_ctor;
};

inline ibl_addon_data & ibl_addon(Napi::Env env) { return *env.GetInstanceData<ibl_addon_data>(); }

// Module parts register their functions here.
void ibl_init_system(Napi::Env env, Napi::Object exports);
void ibl_init_gguf(Napi::Env env, Napi::Object exports);
void ibl_init_encoder(Napi::Env env, Napi::Object exports);
void ibl_init_llm(Napi::Env env, Napi::Object exports);
