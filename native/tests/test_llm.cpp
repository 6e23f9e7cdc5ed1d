// The LLM with the injection, fed the fixtures' bind outputs (expected/llm_*_visual[_knn].npy), against
// the expected prompt logits and greedy tokens, on the device and layer split the environment names:
//   IBL_LLM_GGUF, IBL_BIND_GGUF   the converted fixture LLM and bind file
//   IBL_LLM_DEVICE                "cpu" (default), or a device name ("CUDA0", "Vulkan0", "MTL0")
//   IBL_LLM_GPU_LAYERS            layers on the device (default -1: all)
//   IBL_LLM_COS, IBL_LLM_REL      tolerances (default the fixtures' f32 ones)
//   IBL_LLM_TOKENS=0              do not require identical greedy tokens (q8_0)
// With a device, it also checks that each layer's injection vector is read where that layer runs.
// This is what scripts/gpu-check.sh runs on a GPU machine without Node.
#include "ibl_test.h"
#include "ibl_mmllm.h"

#include "nlohmann/json.hpp"

#include <cstdlib>
#include <fstream>

using json = nlohmann::json;

static const char * env_or(const char * name, const char * dflt) {
    const char * v = getenv(name);
    return v && *v ? v : dflt;
}

static void check_placement(ibl_test & t, const ibl_mmllm & m, const std::vector<float> & injection, const std::vector<llama_token> & prompt) {
    ibl_session_params sp;
    sp.trace_placement = true;
    ibl_llm_session s(*m.llm, sp);
    s.set_injection(injection);
    s.eval(prompt);
    const int n_layer = m.llm->n_layer, ngl = m.llm->n_gpu_layers;
    t.check((int) s.injection_placement().size() == n_layer, "placement: every layer's injection node seen");
    for (const auto & p : s.injection_placement()) {
        const bool on_device = p.layer >= n_layer + 1 - ngl;  // llama.cpp offloads the output layer and the last ngl - 1 blocks
        const bool ok = !p.injection_copied && p.injection_host == !on_device && p.weight_host == !on_device &&
                        (!on_device || p.injection_buffer == p.weight_buffer);
        t.check(ok, "placement: layer " + std::to_string(p.layer) + " injection in " + p.injection_buffer +
                    (p.injection_copied ? " (copied)" : "") + ", weights in " + p.weight_buffer);
    }
}

void test_llm(ibl_test & t) {
    const char * llm_path = getenv("IBL_LLM_GGUF");
    const char * bind_path = getenv("IBL_BIND_GGUF");
    if (!t.check(llm_path && bind_path, "IBL_LLM_GGUF and IBL_BIND_GGUF name the converted fixture LLM")) return;
    const double cos_min = atof(env_or("IBL_LLM_COS", "0.99999"));
    const double rel = atof(env_or("IBL_LLM_REL", "1e-4"));
    const bool tokens = atoi(env_or("IBL_LLM_TOKENS", "1")) != 0;
    ibl_llm_params lp;
    lp.n_threads = 2;
    lp.device = env_or("IBL_LLM_DEVICE", "cpu");
    lp.n_gpu_layers = atoi(env_or("IBL_LLM_GPU_LAYERS", "-1"));
    auto m = ibl_mmllm_load({llm_path, bind_path, ""}, lp);
    printf("device %s, %d layer(s) offloaded\n", m->llm->device.c_str(), m->llm->n_gpu_layers);

    std::ifstream mf(t.tiny("manifest.json"));
    const json manifest = json::parse(mf);
    bool placed = false;
    for (const auto & c : manifest["llm_cases"]) {
        if (!c.contains("inputs") || c["inputs"].empty()) continue;
        const std::string name = c["name"];
        std::vector<llama_token> prompt;
        for (const auto & id : c["prompt_tokens"]) prompt.push_back(id.get<int>());
        std::ifstream gf(t.tiny(c["expected"]["greedy"]));
        const json greedy = json::parse(gf);
        for (const bool knn : {false, true}) {
            const std::string what = name + (knn ? " +knn" : "");
            const auto visual = ibl_npy_load(t.tiny(c["expected"][knn ? "visual_knn" : "visual"])).to_f32();
            const auto injection = m->bind->injection(visual);
            ibl_llm_session s(*m->llm, ibl_session_params{});
            s.set_injection(injection);
            s.eval(prompt);
            t.check_close(s.last_logits(), ibl_npy_load(t.tiny(c["expected"][knn ? "logits_knn" : "logits"])).to_f32(), what + ": logits", rel, cos_min);
            ibl_generate_params gp;
            gp.max_tokens = 12;
            gp.sampling.temperature = 0.0f;
            const auto g = s.generate(gp, [](const std::string &, llama_token) { return true; });
            std::vector<llama_token> want;
            for (const auto & id : greedy[knn ? "knn" : "no_knn"]["tokens"]) want.push_back(id.get<int>());
            if (tokens) t.check(g.tokens == want, what + ": greedy tokens");
            if (!placed && m->llm->n_gpu_layers > 0) {
                check_placement(t, *m, injection, prompt);
                placed = true;
            }
        }
    }
}
