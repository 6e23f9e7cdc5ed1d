#include "ibl_mmllm.h"
#include "ibl_error.h"

#include <cmath>

std::unique_ptr<ibl_mmllm> ibl_mmllm_load(const ibl_mmllm_paths & paths, const ibl_llm_params & params) {
    auto m = std::make_unique<ibl_mmllm>();
    if (paths.bind.empty()) ibl_throw("ERR_INVALID_ARG", "a bind file (<prefix>-bind.gguf) is needed next to the model");
    m->llm = ibl_llm_load(paths.llm, params);
    m->bind = ibl_bind_load(paths.bind, paths.llm, params.n_threads);
    if (m->bind->llm_n_vocab != m->llm->n_vocab) {
        ibl_throw("ERR_MODEL_MISMATCH", "%s was converted for a vocabulary of %d tokens, but %s has %d", paths.bind.c_str(),
                  m->bind->llm_n_vocab, paths.llm.c_str(), m->llm->n_vocab);
    }
    if (!paths.cache.empty()) {
        ibl_knn_params kp;
        kp.n_threads = params.n_threads;
        m->cache = ibl_knn_load(paths.cache, kp);
        if (m->cache->dim != m->bind->input_dim) {
            ibl_throw("ERR_MODEL_MISMATCH", "%s holds %lld-d features, but the bind network takes %d-d embeddings", paths.cache.c_str(),
                      (long long) m->cache->dim, m->bind->input_dim);
        }
    }
    return m;
}

size_t ibl_mmllm_bytes(const ibl_mmllm & m) {
    return (size_t) llama_model_size(m.llm->model) + m.bind->weights_bytes + (m.cache ? m.cache->features_bytes : 0);
}

ibl_visual ibl_mmllm_visual(ibl_mmllm & m, const std::vector<std::vector<float>> & embeddings, const std::vector<float> & weights,
                            const ibl_knn_blend_params * cache) {
    ibl_visual r;
    for (const auto & e : embeddings) {
        if ((int) e.size() != m.bind->input_dim) {
            ibl_throw("ERR_MODEL_MISMATCH", "the encoder gives %zu-d embeddings, but the bind network %s takes %d-d", e.size(),
                      m.bind->path.c_str(), m.bind->input_dim);
        }
        for (float v : e) if (!std::isfinite(v)) ibl_throw("ERR_INVALID_ARG", "an embedding holds NaN or infinite values");
    }
    r.mixed = ibl_mix_embeddings(embeddings, weights);
    r.blended = r.mixed;
    if (cache) {
        if (!m.cache) ibl_throw("ERR_INVALID_ARG", "cache-enhanced inference needs a cache (--cache <cache.gguf>)");
        std::lock_guard<std::mutex> lock(m.cache_mu);
        r.blended = ibl_knn_blend(*m.cache, r.mixed.data(), *cache, &r.hits);
    }
    r.visual = m.bind->visual(r.blended);
    r.injection = m.bind->injection(r.visual);
    for (const auto * v : {&r.visual, &r.injection}) {
        for (float x : *v) {
            if (!std::isfinite(x)) ibl_throw("ERR_NON_FINITE", "%s: the bind network's output is not finite (its weights are out of range)", m.bind->path.c_str());
        }
    }
    return r;
}
