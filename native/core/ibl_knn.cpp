#include "ibl_knn.h"
#include "ibl_threads.h"
#include "ibl_backend.h"
#include "ibl_error.h"
#include "ibl_gguf.h"
#include "ibl_keys.h"
#include "ibl_mmap.h"

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "gguf.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <mutex>

namespace {

struct chunk {
    int64_t       row0 = 0, rows = 0;
    ggml_tensor * features = nullptr;  // [dim, rows] f16/f32
    ggml_tensor * sqnorms  = nullptr;  // [rows] f32 (l2)
    ggml_tensor * scores   = nullptr;  // graph output: [rows, nq] = features^T · queries
};

std::string tensor_name(const char * fmt, int k) {
    char buf[GGML_MAX_NAME];
    snprintf(buf, sizeof(buf), fmt, k);
    return buf;
}

bool better(const ibl_knn_hit & a, const ibl_knn_hit & b, bool larger_first) {
    if (a.score != b.score) return larger_first ? a.score > b.score : a.score < b.score;
    return a.index < b.index;
}

}  // namespace

struct ibl_knn_impl {
    gguf_context *        gguf = nullptr;
    ggml_context *        ctx_w = nullptr;     // tensor metadata of the file
    ibl_file_map          map;
    ggml_backend_buffer_t buf_w = nullptr;     // over the mapping, or holding the rows read
    ggml_backend_t        backend = nullptr;
    std::vector<chunk>    chunks;

    // The scan graph for nq queries, rebuilt when nq changes.
    ggml_context *   ctx_g = nullptr;
    ggml_cgraph *    graph = nullptr;
    ggml_gallocr_t   galloc = nullptr;
    ggml_tensor *    queries = nullptr;   // [dim, nq] f32
    int64_t          graph_nq = 0;
    std::mutex       mutex;

    ~ibl_knn_impl() {
        if (galloc) ggml_gallocr_free(galloc);
        if (ctx_g) ggml_free(ctx_g);
        if (buf_w) ggml_backend_buffer_free(buf_w);
        if (backend) ggml_backend_free(backend);
        if (ctx_w) ggml_free(ctx_w);
        if (gguf) gguf_free(gguf);
    }

    void build_graph(int64_t nq, int64_t dim, const std::string & path) {
        if (graph && graph_nq == nq) return;
        if (ctx_g) { ggml_free(ctx_g); ctx_g = nullptr; graph = nullptr; }
        const size_t n_nodes = 2 * chunks.size() + 16;
        ggml_init_params p = { ggml_tensor_overhead() * (chunks.size() + 4) + ggml_graph_overhead_custom(n_nodes, false), nullptr, true };
        ctx_g = ggml_init(p);
        if (!ctx_g) ibl_throw("ERR_OUT_OF_MEMORY", "%s: cannot allocate the search graph", path.c_str());
        queries = ggml_new_tensor_2d(ctx_g, GGML_TYPE_F32, dim, nq);
        ggml_set_name(queries, "knn_queries");
        ggml_set_input(queries);
        graph = ggml_new_graph_custom(ctx_g, n_nodes, false);
        for (size_t k = 0; k < chunks.size(); ++k) {
            // [dim, rows]^T · [dim, nq] → [rows, nq]
            chunks[k].scores = ggml_mul_mat(ctx_g, chunks[k].features, queries);
            ggml_set_name(chunks[k].scores, tensor_name("knn_scores.%d", (int) k).c_str());
            ggml_set_output(chunks[k].scores);
            ggml_build_forward_expand(graph, chunks[k].scores);
        }
        if (!galloc) galloc = ggml_gallocr_new(ggml_backend_cpu_buffer_type());
        if (!ggml_gallocr_alloc_graph(galloc, graph)) {
            ibl_throw("ERR_OUT_OF_MEMORY", "%s: cannot allocate the search buffers for %lld queries", path.c_str(), (long long) nq);
        }
        graph_nq = nq;
    }
};

ibl_knn::~ibl_knn() = default;

namespace {

void bind_tensors_mapped(ibl_knn & knn, ibl_knn_impl & im, uint64_t file_size) {
    // The mapping starts on a page boundary, which satisfies ggml's buffer alignment.
    im.buf_w = ggml_backend_cpu_buffer_from_ptr(im.map.addr, (size_t) file_size);
    if (!im.buf_w) ibl_throw("ERR_OUT_OF_MEMORY", "%s: cannot create a buffer over the mapped file", knn.path.c_str());
    const size_t data_offset = gguf_get_data_offset(im.gguf);
    for (int64_t i = 0; i < gguf_get_n_tensors(im.gguf); ++i) {
        ggml_tensor * t = ggml_get_tensor(im.ctx_w, gguf_get_tensor_name(im.gguf, i));
        if (!t) continue;
        // In range: ibl_gguf_open checked that every tensor's data lies within the file.
        void * addr = (uint8_t *) im.map.addr + data_offset + gguf_get_tensor_offset(im.gguf, i);
        if (ggml_backend_tensor_alloc(im.buf_w, t, addr) != GGML_STATUS_SUCCESS) {
            ibl_throw("ERR_MODEL_INVALID", "%s: cannot place tensor '%s'", knn.path.c_str(), t->name);
        }
        // One pass over the mapped features at load (a search reads them all anyway): NaN or Inf would
        // rank neighbours arbitrarily.
        if (!ggml_validate_row_data(t->type, addr, ggml_nbytes(t))) {
            ibl_throw("ERR_MODEL_INVALID", "%s: tensor '%s' holds NaN or infinite values", knn.path.c_str(), t->name);
        }
    }
    knn.mapped = true;
}

void read_tensors(ibl_knn & knn, ibl_knn_impl & im) {
    im.buf_w = ggml_backend_alloc_ctx_tensors_from_buft(im.ctx_w, ggml_backend_cpu_buffer_type());
    if (!im.buf_w) ibl_throw("ERR_OUT_OF_MEMORY", "%s: cannot allocate %zu bytes for the cache", knn.path.c_str(), knn.features_bytes);
    ibl_gguf_load_tensor_data(knn.path, im.gguf, im.ctx_w);
}

ggml_tensor * get_chunk_tensor(const ibl_knn & knn, ggml_context * ctx, const std::string & name, bool features, int64_t rows) {
    ggml_tensor * t = ggml_get_tensor(ctx, name.c_str());
    if (!t) ibl_throw("ERR_MODEL_INVALID", "%s: missing tensor '%s'", knn.path.c_str(), name.c_str());
    const bool type_ok = features ? (t->type == GGML_TYPE_F16 || t->type == GGML_TYPE_F32) : t->type == GGML_TYPE_F32;
    if (!type_ok) {
        ibl_throw("ERR_MODEL_INVALID", "%s: tensor '%s' has type %s, expected %s", knn.path.c_str(), name.c_str(),
                  ggml_type_name(t->type), features ? "f16 or f32" : "f32");
    }
    const bool shape_ok = features ? (ggml_n_dims(t) <= 2 && t->ne[0] == knn.dim && t->ne[1] == rows)
                                   : (ggml_n_dims(t) == 1 && t->ne[0] == rows);
    if (!shape_ok) {
        std::string got;
        for (int i = 0; i < ggml_n_dims(t); ++i) got += (i ? ", " : "") + std::to_string(t->ne[i]);
        const std::string want = features ? std::to_string(knn.dim) + ", " + std::to_string(rows) : std::to_string(rows);
        ibl_throw("ERR_MODEL_INVALID", "%s: tensor '%s' has shape [%s], expected [%s]", knn.path.c_str(), name.c_str(), got.c_str(), want.c_str());
    }
    return t;
}

// Row `r` of a chunk as doubles.
void row_values(const chunk & c, int64_t r, int64_t dim, double * out) {
    const ggml_tensor * t = c.features;
    const uint8_t * p = (const uint8_t *) t->data + r * t->nb[1];
    if (t->type == GGML_TYPE_F32) {
        const float * x = (const float *) p;
        for (int64_t i = 0; i < dim; ++i) out[i] = x[i];
    } else {
        const ggml_fp16_t * x = (const ggml_fp16_t *) p;
        for (int64_t i = 0; i < dim; ++i) out[i] = ggml_fp16_to_fp32(x[i]);
    }
}

const chunk & chunk_of(const ibl_knn_impl & im, int64_t chunk_rows, int64_t index) {
    return im.chunks[(size_t) (index / chunk_rows)];
}

void check_finite(const float * v, int64_t n, const char * what) {
    for (int64_t i = 0; i < n; ++i) {
        if (!std::isfinite(v[i])) ibl_throw("ERR_INVALID_ARG", "%s: element %lld is %s", what, (long long) i, std::isnan(v[i]) ? "NaN" : "infinite");
    }
}

}  // namespace

std::unique_ptr<ibl_knn> ibl_knn_load(const std::string & path, const ibl_knn_params & params) {
    auto knn = std::make_unique<ibl_knn>();
    knn->path = path;
    knn->impl = std::make_unique<ibl_knn_impl>();
    ibl_knn_impl & im = *knn->impl;
    im.gguf = ibl_gguf_open(path, &im.ctx_w);
    const gguf_context * g = im.gguf;

    const std::string arch = ibl_gguf_str(g, path, IBL_KEY_ARCH, false, "");
    if (arch != IBL_ARCH_CACHE) {
        ibl_throw("ERR_MODEL_WRONG_TYPE", "%s: not a kNN cache: general.architecture is '%s', expected '%s' (make one with `imagebind-llm convert cache`)",
                  path.c_str(), arch.c_str(), IBL_ARCH_CACHE);
    }
    knn->name        = ibl_gguf_str(g, path, IBL_KEY_NAME, false, "");
    knn->file_type   = ibl_gguf_str(g, path, IBL_KEY_FILE_TYPE, false, "");
    knn->source_type = ibl_gguf_str(g, path, IBL_KEY_CACHE_SOURCE, false, "");
    knn->dim         = ibl_gguf_int(g, path, IBL_KEY_CACHE_DIM, true, 0, 1, 1 << 20);
    knn->count       = ibl_gguf_int(g, path, IBL_KEY_CACHE_COUNT, true, 0, 1, (int64_t) 1 << 40);
    knn->chunk_rows  = ibl_gguf_int(g, path, IBL_KEY_CACHE_CHUNK_ROWS, true, 0, 1, (int64_t) 1 << 40);
    const int64_t n_chunks = (knn->count + knn->chunk_rows - 1) / knn->chunk_rows;
    const int64_t stated   = ibl_gguf_int(g, path, IBL_KEY_CACHE_CHUNK_COUNT, false, n_chunks, 1, (int64_t) 1 << 31);
    if (stated != n_chunks) {
        ibl_throw("ERR_MODEL_INVALID", "%s: %s = %lld, but %lld rows in chunks of %lld make %lld", path.c_str(), IBL_KEY_CACHE_CHUNK_COUNT,
                  (long long) stated, (long long) knn->count, (long long) knn->chunk_rows, (long long) n_chunks);
    }
    const std::string metric = ibl_gguf_str(g, path, IBL_KEY_CACHE_METRIC, true, "");
    if (metric == "ip") knn->metric = IBL_KNN_METRIC_IP;
    else if (metric == "l2") knn->metric = IBL_KNN_METRIC_L2;
    else ibl_throw("ERR_MODEL_INVALID", "%s: %s is '%s', expected 'ip' or 'l2'", path.c_str(), IBL_KEY_CACHE_METRIC, metric.c_str());

    im.chunks.resize((size_t) n_chunks);
    for (int64_t k = 0; k < n_chunks; ++k) {
        chunk & c = im.chunks[(size_t) k];
        c.row0 = k * knn->chunk_rows;
        c.rows = std::min(knn->chunk_rows, knn->count - c.row0);
        c.features = get_chunk_tensor(*knn, im.ctx_w, tensor_name(IBL_TN_CACHE_FEATURES, (int) k), true, c.rows);
        if (c.features->type != im.chunks[0].features->type) {
            ibl_throw("ERR_MODEL_INVALID", "%s: tensor '%s' is %s but '%s' is %s: all chunks must have one type", path.c_str(),
                      c.features->name, ggml_type_name(c.features->type), im.chunks[0].features->name, ggml_type_name(im.chunks[0].features->type));
        }
        knn->features_bytes += ggml_nbytes(c.features);
        if (knn->metric == IBL_KNN_METRIC_L2) {
            c.sqnorms = get_chunk_tensor(*knn, im.ctx_w, tensor_name(IBL_TN_CACHE_SQNORMS, (int) k), false, c.rows);
            knn->features_bytes += ggml_nbytes(c.sqnorms);
        }
    }
    if (knn->file_type.empty()) knn->file_type = ggml_type_name(im.chunks[0].features->type);

    uint64_t file_size = 0;
    {
        FILE * f = fopen(path.c_str(), "rb");
        if (!f) ibl_throw("ERR_FILE_READ", "%s: cannot open: %s", path.c_str(), strerror(errno));
#ifdef _WIN32
        _fseeki64(f, 0, SEEK_END);
        file_size = (uint64_t) _ftelli64(f);
#else
        fseeko(f, 0, SEEK_END);
        file_size = (uint64_t) ftello(f);
#endif
        fclose(f);
    }
    if (params.use_mmap && im.map.map(path, file_size)) bind_tensors_mapped(*knn, im, file_size);
    else read_tensors(*knn, im);

    // The scan reads the memory-mapped rows in place: it runs on the CPU.
    im.backend = ibl_cpu_backend_init(params.n_threads);
    return knn;
}

void ibl_knn_set_n_threads(ibl_knn & knn, int n_threads) {
    std::lock_guard<std::mutex> lock(knn.impl->mutex);
    ibl_backend_set_n_threads(knn.impl->backend, ibl_threads_resolve(n_threads));
}

std::vector<float> ibl_knn_row(const ibl_knn & knn, int64_t i) {
    if (i < 0 || i >= knn.count) ibl_throw("ERR_INVALID_ARG", "%s: row %lld out of range (the cache has %lld rows)", knn.path.c_str(), (long long) i, (long long) knn.count);
    const chunk & c = chunk_of(*knn.impl, knn.chunk_rows, i);
    std::vector<double> v((size_t) knn.dim);
    row_values(c, i - c.row0, knn.dim, v.data());
    return std::vector<float>(v.begin(), v.end());
}

std::vector<ibl_knn_hit> ibl_knn_search(ibl_knn & knn, const float * queries, int64_t nq, int64_t k) {
    if (nq < 1 || nq > (1 << 20)) ibl_throw("ERR_INVALID_ARG", "kNN search: %lld queries (expected 1 to %d)", (long long) nq, 1 << 20);
    if (k < 1) ibl_throw("ERR_INVALID_ARG", "kNN search: k must be at least 1, got %lld", (long long) k);
    check_finite(queries, nq * knn.dim, "kNN search query");
    ibl_knn_impl & im = *knn.impl;
    const int64_t dim = knn.dim;
    const bool ip = knn.metric == IBL_KNN_METRIC_IP;
    k = std::min(k, knn.count);
    const int64_t n_cand = std::min(knn.count, k + IBL_KNN_RERANK);

    // Queries go through the graph in groups, so the scores (count × group floats) stay ≤ ~256 MiB.
    const int64_t group = std::max<int64_t>(1, std::min<int64_t>({nq, IBL_KNN_MAX_GROUP, ((int64_t) 256 << 20) / (4 * knn.count)}));

    std::lock_guard<std::mutex> lock(im.mutex);
    std::vector<ibl_knn_hit> out;
    out.reserve((size_t) (nq * k));
    std::vector<ibl_knn_hit> heap;
    std::vector<double> row((size_t) dim);
    // The heap's top is the worst candidate kept (larger key = closer).
    auto worse_on_top = [](const ibl_knn_hit & a, const ibl_knn_hit & b) { return better(a, b, true); };
    for (int64_t j = 0; j < nq; ++j) {
        const int64_t jg = j % group;  // column of this query in its group
        if (jg == 0) {
            const int64_t n = std::min(group, nq - j);
            im.build_graph(n, dim, knn.path);
            ggml_backend_tensor_set(im.queries, queries + j * dim, 0, (size_t) (n * dim) * sizeof(float));
            ibl_log_clear_last_error();
            const ggml_status st = ggml_backend_graph_compute(im.backend, im.graph);
            if (st != GGML_STATUS_SUCCESS) {
                const std::string why = ibl_log_last_error();
                ibl_throw("ERR_COMPUTE", "%s: kNN search failed (ggml status %d)%s%s", knn.path.c_str(), (int) st, why.empty() ? "" : ": ", why.c_str());
            }
        }
        const float * q = queries + j * dim;
        heap.clear();
        // Approximate scan: key = q·x (ip) or 2 q·x − |x|² (l2: −(|q−x|² − |q|²)).
        for (const chunk & c : im.chunks) {
            const float * s = (const float *) c.scores->data + jg * c.rows;
            const float * sq = c.sqnorms ? (const float *) c.sqnorms->data : nullptr;
            for (int64_t r = 0; r < c.rows; ++r) {
                float key = ip ? s[r] : 2.0f * s[r] - sq[r];
                if (std::isnan(key)) key = -std::numeric_limits<float>::infinity();
                if ((int64_t) heap.size() < n_cand) {
                    heap.push_back({c.row0 + r, key});
                    std::push_heap(heap.begin(), heap.end(), worse_on_top);
                } else if (key > heap.front().score) {
                    // Rows come in ascending order, so an equal key never displaces a lower index.
                    std::pop_heap(heap.begin(), heap.end(), worse_on_top);
                    heap.back() = {c.row0 + r, key};
                    std::push_heap(heap.begin(), heap.end(), worse_on_top);
                }
            }
        }
        // Re-score the candidates exactly (double, against the stored rows) and keep the best k.
        for (ibl_knn_hit & h : heap) {
            row_values(chunk_of(im, knn.chunk_rows, h.index), h.index % knn.chunk_rows, dim, row.data());
            double acc = 0;
            if (ip) {
                for (int64_t i = 0; i < dim; ++i) acc += (double) q[i] * row[(size_t) i];
            } else {
                for (int64_t i = 0; i < dim; ++i) { const double d = (double) q[i] - row[(size_t) i]; acc += d * d; }
            }
            h.score = (float) acc;
            if (std::isnan(h.score)) h.score = ip ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
        }
        std::sort(heap.begin(), heap.end(), [ip](const ibl_knn_hit & a, const ibl_knn_hit & b) { return better(a, b, ip); });
        out.insert(out.end(), heap.begin(), heap.begin() + k);
    }
    return out;
}

std::vector<float> ibl_knn_blend(ibl_knn & knn, const float * query, const ibl_knn_blend_params & params, std::vector<ibl_knn_hit> * hits) {
    if (knn.metric != IBL_KNN_METRIC_IP) {
        ibl_throw("ERR_INVALID_ARG", "%s: cache blending needs an inner-product cache (upstream's IndexFlatIP of unit features); this cache's metric is l2",
                  knn.path.c_str());
    }
    if (params.k < 1) ibl_throw("ERR_INVALID_ARG", "cache blend: cache_size must be at least 1, got %lld", (long long) params.k);
    if (!std::isfinite(params.t)) ibl_throw("ERR_INVALID_ARG", "cache blend: cache_t must be finite");
    if (!(params.weight >= 0.0f && params.weight <= 1.0f)) ibl_throw("ERR_INVALID_ARG", "cache blend: cache_weight must be in [0, 1], got %g", (double) params.weight);
    const int64_t dim = knn.dim;
    std::vector<ibl_knn_hit> nn = ibl_knn_search(knn, query, 1, params.k);

    // p = softmax(t · s)
    double smax = -std::numeric_limits<double>::infinity();
    for (const auto & h : nn) smax = std::max(smax, (double) h.score);
    std::vector<double> p(nn.size());
    double psum = 0;
    for (size_t j = 0; j < nn.size(); ++j) psum += (p[j] = std::exp((double) params.t * ((double) nn[j].score - smax)));
    // c = Σ p_j · row_j / |·|
    std::vector<double> c((size_t) dim, 0.0), row((size_t) dim);
    for (size_t j = 0; j < nn.size(); ++j) {
        const chunk & ch = chunk_of(*knn.impl, knn.chunk_rows, nn[j].index);
        row_values(ch, nn[j].index - ch.row0, dim, row.data());
        const double w = p[j] / psum;
        for (int64_t i = 0; i < dim; ++i) c[(size_t) i] += w * row[(size_t) i];
    }
    double cn = 0;
    for (double x : c) cn += x * x;
    cn = std::sqrt(cn);
    if (!(cn > 0) || !std::isfinite(cn)) ibl_throw("ERR_COMPUTE", "%s: the weighted sum of the nearest cached features is zero", knn.path.c_str());
    // v = (1 − w) · q + w · c, normalised
    std::vector<double> v((size_t) dim);
    double vn = 0;
    for (int64_t i = 0; i < dim; ++i) {
        v[(size_t) i] = (1.0 - params.weight) * (double) query[i] + (double) params.weight * c[(size_t) i] / cn;
        vn += v[(size_t) i] * v[(size_t) i];
    }
    vn = std::sqrt(vn);
    if (!(vn > 0)) ibl_throw("ERR_COMPUTE", "%s: the blended feature is zero (the query is opposite to its cached neighbours)", knn.path.c_str());
    std::vector<float> res((size_t) dim);
    for (int64_t i = 0; i < dim; ++i) res[(size_t) i] = (float) (v[(size_t) i] / vn);
    if (hits) *hits = std::move(nn);
    return res;
}
