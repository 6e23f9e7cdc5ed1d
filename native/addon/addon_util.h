// N-API plumbing shared by every binding: core errors → JS Errors with `code`, and a promise-returning
// worker that runs core work off the JS thread (the baton: inputs copied into plain C++ data before
// Execute(), the JS result built in OnOK).
#pragma once

#include "addon_jobs.h"
#include "ibl_error.h"

#include <napi.h>

#include <algorithm>
#include <atomic>
#include <memory>
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

// Per-environment state (worker threads each load their own instance): constructors of the classes
// the addon creates from native code.
struct ibl_addon_data {
    Napi::FunctionReference encoder_ctor, abort_token_ctor, llm_model_ctor, llm_session_ctor;
    std::shared_ptr<ibl_job_registry> jobs = std::make_shared<ibl_job_registry>();
};

inline ibl_addon_data & ibl_addon(Napi::Env env) { return *env.GetInstanceData<ibl_addon_data>(); }

// A thread-safe function through which a worker streams callbacks (tokens, progress) to JS.
using ibl_tsfn = std::shared_ptr<Napi::ThreadSafeFunction>;

// `max_queue` 0: unbounded; 1: a worker's BlockingCall waits until JS has taken the previous call,
// so the work never runs ahead of its callbacks by more than one (generation stops within a token of
// an abort the callbacks trigger).
inline ibl_tsfn ibl_tsfn_of(Napi::Env env, const Napi::CallbackInfo & info, size_t i, const char * name, size_t max_queue = 0) {
    if (info.Length() <= i || !info[i].IsFunction()) return nullptr;
    return std::make_shared<Napi::ThreadSafeFunction>(Napi::ThreadSafeFunction::New(env, info[i].As<Napi::Function>(), name, max_queue, 1));
}

template <typename R>
class ibl_promise_worker : public Napi::AsyncWorker {
public:
    using work_fn  = std::function<R()>;
    using to_js_fn = std::function<Napi::Value(Napi::Env, R &)>;

    // `on_error` (optional) runs on the JS thread when the work failed, before the promise rejects.
    // `stream` (optional): the thread-safe function the work calls back through. The promise then
    // settles through the same queue, after every callback the work made: no callback ever arrives
    // after the promise has settled. The worker thread queues the settlement (it may wait for room in
    // a bounded queue there, never on the JS thread) and releases the function.
    // `abort` (optional): the flag the work watches; the environment's end sets it (addon_jobs.h).
    static Napi::Promise start(Napi::Env env, const char * name, work_fn work, to_js_fn to_js,
                               std::function<void()> on_error = nullptr, ibl_tsfn stream = nullptr,
                               std::shared_ptr<std::atomic<bool>> abort = nullptr) {
        auto * w = new ibl_promise_worker(env, name, std::move(work), std::move(to_js));
        w->on_error_ = std::move(on_error);
        w->stream_ = std::move(stream);
        w->abort_ = std::move(abort);
        w->jobs_ = ibl_addon(env).jobs;
        Napi::Promise p = w->deferred_.Promise();
        w->Queue();
        return p;
    }

protected:
    void Execute() override {
        const auto job = jobs_->add({abort_, stream_});
        bool failed = true;
        std::string error;
        try {
            result_ = work_();
            failed = false;
        } catch (const ibl_error & e) {
            code_ = e.code;
            error = e.what();
        } catch (const std::bad_alloc &) {
            code_ = "ERR_OUT_OF_MEMORY";
            error = "out of memory";
        } catch (const std::exception & e) {
            code_ = "ERR_NATIVE";
            error = e.what();
        }
        if (failed) SetError(error);
        if (stream_) settle_through_stream(failed, error);
        jobs_->remove(job);
        if (stream_) stream_->Release();
    }
    void OnOK() override {
        if (stream_) return;  // settled through the stream
        try {
            deferred_.Resolve(to_js_(Env(), result_));
        } catch (const Napi::Error & e) {
            deferred_.Reject(e.Value());
        }
    }
    void OnError(const Napi::Error & e) override {
        if (on_error_) on_error_();
        if (stream_) return;
        deferred_.Reject(ibl_js_error(Env(), code_, e.Message()).Value());
    }

private:
    // On the worker thread: queue the settlement behind every callback the work made.
    void settle_through_stream(bool failed, const std::string & error) {
        auto d = deferred_;
        napi_status st;
        if (!failed) {
            auto to_js = to_js_;
            auto r = std::make_shared<R>(std::move(result_));
            st = stream_->BlockingCall([d, to_js, r](Napi::Env env, Napi::Function) mutable {
                try {
                    d.Resolve(to_js(env, *r));
                } catch (const Napi::Error & e) {
                    d.Reject(e.Value());
                }
            });
        } else {
            const std::string code = code_;
            st = stream_->BlockingCall([d, code, error](Napi::Env env, Napi::Function) mutable {
                d.Reject(ibl_js_error(env, code, error).Value());
            });
        }
        (void) st;  // napi_closing: the environment is going away, nothing is left to settle
    }

    ibl_promise_worker(Napi::Env env, const char * name, work_fn work, to_js_fn to_js)
        : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)),
          work_(std::move(work)), to_js_(std::move(to_js)) {}

    Napi::Promise::Deferred deferred_;
    work_fn                 work_;
    to_js_fn                to_js_;
    std::function<void()>   on_error_;
    ibl_tsfn                stream_;
    std::shared_ptr<std::atomic<bool>> abort_;
    std::shared_ptr<ibl_job_registry>  jobs_;
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



// The state a wrapper object is constructed from, moved out of the External that carried it (the
// External itself lives until the garbage collector takes it: a copy left there would keep the native
// memory alive after dispose()).
template <typename T>
std::shared_ptr<T> ibl_take_external(const Napi::CallbackInfo & info, const char * what) {
    if (info.Length() < 1 || !info[0].IsExternal()) ibl_throw_type(info.Env(), std::string(what) + " cannot be constructed directly");
    auto * p = info[0].As<Napi::External<std::shared_ptr<T>>>().Data();
    std::shared_ptr<T> out = std::move(*p);
    if (!out) ibl_throw_type(info.Env(), std::string(what) + ": this handle was used already");
    return out;
}

// Native memory reported to V8 while a wrapper holds it, so that the garbage collector runs when
// JS forgets to dispose of large native objects; given back at dispose or finalization.
class ibl_external_memory {
public:
    void set(Napi::Env env, int64_t bytes) {
        release(env);
        bytes_ = bytes;
        if (bytes_) Napi::MemoryManagement::AdjustExternalMemory(env, bytes_);
    }
    void release(Napi::Env env) {
        if (bytes_) Napi::MemoryManagement::AdjustExternalMemory(env, -bytes_);
        bytes_ = 0;
    }
private:
    int64_t bytes_ = 0;
};

// The flag of an AbortToken (addon_encoder.cpp) that JS sets when an AbortSignal fires; null when `v`
// is not a token.
std::shared_ptr<std::atomic<bool>> ibl_abort_token_flag(Napi::Env env, Napi::Value v);

// The abort flag of a job: the AbortToken's passed at info[i], else a fresh one (so that the end of the
// environment can stop the job all the same).
inline std::shared_ptr<std::atomic<bool>> ibl_job_flag(Napi::Env env, const Napi::CallbackInfo & info, size_t i) {
    auto f = info.Length() > i ? ibl_abort_token_flag(env, info[i]) : nullptr;
    return f ? f : std::make_shared<std::atomic<bool>>(false);
}

// Module parts register their functions here.
void ibl_init_system(Napi::Env env, Napi::Object exports);
void ibl_init_gguf(Napi::Env env, Napi::Object exports);
void ibl_init_encoder(Napi::Env env, Napi::Object exports);
void ibl_init_llm(Napi::Env env, Napi::Object exports);
