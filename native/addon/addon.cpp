// Entry point of the imagebind_llm Node addon: registers each binding file's exports.
#include "addon_util.h"

#include "llama.h"

static Napi::Object ibl_addon_init(Napi::Env env, Napi::Object exports) {
    ibl_log_init();
    llama_backend_init();
    env.SetInstanceData<ibl_addon_data>(new ibl_addon_data());
    ibl_init_system(env, exports);
    ibl_init_gguf(env, exports);
    ibl_init_encoder(env, exports);
    ibl_init_llm(env, exports);
    return exports;
}

NODE_API_MODULE(imagebind_llm, ibl_addon_init)
