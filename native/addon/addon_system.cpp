// Bindings: versions, backends/devices and the modules they came from, system info, log verbosity.
#include "addon_util.h"
#include "ibl_backend.h"
#include "ibl_system.h"
#include "ibl_threads.h"

static Napi::Value js_versions(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const ibl_versions v = ibl_get_versions();
    Napi::Object o = Napi::Object::New(env);
    o.Set("package", v.package);
    o.Set("llamaCppTag", v.llama_tag);
    o.Set("llamaCppCommit", v.llama_commit);
    o.Set("ggmlVersion", v.ggml_version);
    o.Set("ggmlCommit", v.ggml_commit);
    o.Set("napi", Napi::Number::New(env, NAPI_VERSION));
    return o;
}

static Napi::Value js_backends(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const auto backends = ibl_call_js(env, [] { return ibl_get_backends(); });
    Napi::Array arr = Napi::Array::New(env, backends.size());
    for (size_t i = 0; i < backends.size(); ++i) {
        const auto & b = backends[i];
        Napi::Object ob = Napi::Object::New(env);
        ob.Set("name", b.name);
        Napi::Object feats = Napi::Object::New(env);
        for (const auto & f : b.features) feats.Set(f.first, f.second);
        ob.Set("features", feats);
        Napi::Array devs = Napi::Array::New(env, b.devices.size());
        for (size_t j = 0; j < b.devices.size(); ++j) {
            const auto & d = b.devices[j];
            Napi::Object od = Napi::Object::New(env);
            od.Set("name", d.name);
            od.Set("description", d.description);
            od.Set("type", d.type);
            od.Set("backend", d.backend);
            od.Set("memoryFree", Napi::Number::New(env, (double) d.memory_free));
            od.Set("memoryTotal", Napi::Number::New(env, (double) d.memory_total));
            devs.Set(j, od);
        }
        ob.Set("devices", devs);
        arr.Set(i, ob);
    }
    return arr;
}

static Napi::Value js_backend_modules(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const ibl_modules_info m = ibl_call_js(env, [] { return ibl_get_modules(); });
    Napi::Object o = Napi::Object::New(env);
    o.Set("dir", m.dir);
    o.Set("cpuModule", m.cpu_module);
    o.Set("cpuVariant", m.cpu_variant);
    Napi::Array mods = Napi::Array::New(env, m.modules.size());
    for (size_t i = 0; i < m.modules.size(); ++i) mods.Set(i, m.modules[i]);
    o.Set("modules", mods);
    return o;
}

static Napi::Value js_add_backend_dir(const Napi::CallbackInfo & info) {
    if (info.Length() < 1 || !info[0].IsString()) ibl_throw_type(info.Env(), "addBackendDir: expected a directory path");
    return Napi::Boolean::New(info.Env(), ibl_backends_add_dir(info[0].As<Napi::String>().Utf8Value()));
}

static Napi::Value js_system_info(const Napi::CallbackInfo & info) {
    return Napi::String::New(info.Env(), ibl_call_js(info.Env(), [] { return ibl_get_system_info(); }));
}

static Napi::Value js_set_verbose(const Napi::CallbackInfo & info) {
    if (info.Length() < 1 || !info[0].IsBoolean()) ibl_throw_type(info.Env(), "setVerbose: expected a boolean");
    ibl_log_set_verbose(info[0].As<Napi::Boolean>().Value());
    return info.Env().Undefined();
}

// {default, max, logical}: the thread count used when none is given, the largest accepted, and the
// logical CPUs this process may run on.
static Napi::Value js_threads(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("default", ibl_threads_default());
    o.Set("max", ibl_threads_max());
    o.Set("logical", ibl_threads_logical());
    return o;
}

void ibl_init_system(Napi::Env env, Napi::Object exports) {
    exports.Set("threads", Napi::Function::New(env, js_threads, "threads"));
    exports.Set("versions", Napi::Function::New(env, js_versions, "versions"));
    exports.Set("backends", Napi::Function::New(env, js_backends, "backends"));
    exports.Set("addBackendDir", Napi::Function::New(env, js_add_backend_dir, "addBackendDir"));
    exports.Set("backendModules", Napi::Function::New(env, js_backend_modules, "backendModules"));
    exports.Set("systemInfo", Napi::Function::New(env, js_system_info, "systemInfo"));
    exports.Set("setVerbose", Napi::Function::New(env, js_set_verbose, "setVerbose"));
}
