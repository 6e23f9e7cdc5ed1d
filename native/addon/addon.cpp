// Entry point of the imagebind_llm Node addon: registers each binding file's exports.
#include "addon_util.h"

#include "llama.h"

static Napi::Object ibl_addon_init(Napi::Env env, Napi::Object exports) {
    ibl_log_init();
    llama_backend_init();
    auto * data = new ibl_addon_data();
    env.SetInstanceData<ibl_addon_data>(data);
    // A worker thread's environment ends: stop its jobs (the main thread's process.exit() does the
    // same through stopJobs, called from a process 'exit' listener).
    env.AddCleanupHook([jobs = data->jobs] { jobs->stop(); });
    exports.Set("stopJobs", Napi::Function::New(env, [](const Napi::CallbackInfo & info) {
        ibl_addon(info.Env()).jobs->stop();
        return info.Env().Undefined();
    }, "stopJobs"));
    ibl_init_system(env, exports);
    ibl_init_gguf(env, exports);
    ibl_init_encoder(env, exports);
    ibl_init_llm(env, exports);
    return exports;
}

NODE_API_MODULE(imagebind_llm, ibl_addon_init)
