#include "ibl_driver_bench.h"

#include "encoder/ibl_encoder.h"
#include "ibl_backend.h"
#include "ibl_error.h"
#include "ibl_gguf.h"

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <vector>

namespace {

double now_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

ggml_type type_from_name(const std::string & name) {
    for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
        const char * n = ggml_type_name((ggml_type) t);
        if (n && name == n) return (ggml_type) t;
    }
    ibl_throw("ERR_INVALID_ARG", "unknown ggml type '%s'", name.c_str());
}

int positive(const char * s, const char * what) {
    const long v = strtol(s, nullptr, 10);
    if (v < 1 || v > (1 << 20)) ibl_throw("ERR_INVALID_ARG", "%s must be a positive integer, got '%s'", what, s);
    return (int) v;
}

}  // namespace

int ibl_cmd_matmul(int argc, char ** argv) {
    if (argc < 6) ibl_throw("ERR_INVALID_ARG", "usage: matmul <M> <N> <K> <threads> [type] [reps]");
    const int M = positive(argv[2], "M"), N = positive(argv[3], "N"), K = positive(argv[4], "K"), nt = positive(argv[5], "threads");
    const ggml_type type = type_from_name(argc > 6 ? argv[6] : "f32");
    const int reps = argc > 7 ? positive(argv[7], "reps") : 3;

    ggml_init_params ip = { 4 * ggml_tensor_overhead() + ggml_graph_overhead(), nullptr, true };
    ggml_context * ctx = ggml_init(ip);
    ggml_tensor * w = ggml_new_tensor_2d(ctx, type, K, N);
    ggml_tensor * x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, K, M);
    ggml_tensor * y = ggml_mul_mat(ctx, w, x);
    ggml_cgraph * gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, y);

    ggml_backend_t backend = ibl_cpu_backend_init(nt);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, backend);
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> wv((size_t) N * K), xv((size_t) M * K);
    for (auto & v : wv) v = u(rng);
    for (auto & v : xv) v = u(rng);
    const std::vector<uint8_t> wq = ibl_convert_rows(type, wv.data(), N, K);
    ggml_backend_tensor_set(w, wq.data(), 0, wq.size());
    ggml_backend_tensor_set(x, xv.data(), 0, ggml_nbytes(x));

    std::vector<double> times;
    for (int i = 0; i <= reps; ++i) {
        const double t0 = now_ms();
        if (ggml_backend_graph_compute(backend, gf) != GGML_STATUS_SUCCESS) ibl_throw("ERR_COMPUTE", "mul_mat failed");
        if (i > 0) times.push_back(now_ms() - t0);
    }
    const double best = *std::min_element(times.begin(), times.end());
    printf("{\"M\":%d,\"N\":%d,\"K\":%d,\"type\":\"%s\",\"threads\":%d,\"ms\":%.3f,\"gflops\":%.2f}\n", M, N, K,
           ggml_type_name(type), nt, best, 2.0 * M * N * K / best / 1e6);
    ggml_backend_buffer_free(buf);
    ggml_backend_free(backend);
    ggml_free(ctx);
    return 0;
}

namespace {

struct op_stat { double ms = 0; int count = 0; double flop = 0; };

struct profiler {
    double t_ask = 0;
    std::map<std::string, op_stat> by_key;

    static std::string key_of(const ggml_tensor * t) {
        std::string k = ggml_op_desc(t);
        if (t->op == GGML_OP_MUL_MAT) {
            char b[160];
            const ggml_tensor * a = t->src[0];
            snprintf(b, sizeof(b), " %s %lldx%lld x %lld", ggml_type_name(a->type), (long long) a->ne[0], (long long) a->ne[1],
                     (long long) (t->ne[1] * t->ne[2] * t->ne[3]));
            k += b;
        }
        return k;
    }

    static bool cb(ggml_tensor * t, bool ask, void * data) {
        auto * p = (profiler *) data;
        if (ask) {
            p->t_ask = now_ms();
            return true;
        }
        op_stat & s = p->by_key[key_of(t)];
        s.ms += now_ms() - p->t_ask;
        s.count++;
        if (t->op == GGML_OP_MUL_MAT) s.flop += 2.0 * (double) ggml_nelements(t) * t->src[0]->ne[0];
        return true;
    }
};

// A synthetic input of n items for the modality (values do not change the speed).
ibl_encoder_batch synthetic_batch(const ibl_model & model, ibl_modality mod, int n) {
    ibl_encoder_batch b;
    b.mod = mod;
    b.n = n;
    const int64_t item = ibl_encoder_item_size(model, mod);
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    if (mod == IBL_MOD_TEXT) {
        for (int i = 0; i < n; ++i) {
            std::vector<int32_t> ids((size_t) item, 0);
            ids[0] = 49406 % model.text.vocab_size;
            for (int k = 1; k < 12 && k < item; ++k) ids[k] = 1000 + k;
            if (item > 12) ids[12] = 49407 % model.text.vocab_size;
            b.ids.insert(b.ids.end(), ids.begin(), ids.end());
        }
        return b;
    }
    b.data.resize((size_t) (item * n));
    for (auto & v : b.data) v = u(rng);
    if (mod == IBL_MOD_POINT) {
        b.centers.resize((size_t) model.point.num_group * 3 * n);
        for (auto & v : b.centers) v = u(rng);
    }
    return b;
}

}  // namespace

int ibl_cmd_profile(int argc, char ** argv) {
    if (argc < 5) ibl_throw("ERR_INVALID_ARG", "usage: profile <encoder.gguf> <modality> <threads> [batch] [reps] [no-flash]");
    ibl_model_params mp;
    mp.device = "cpu";
    mp.flash_attn = !(argc > 7 && strcmp(argv[7], "no-flash") == 0);
    mp.n_threads = positive(argv[4], "threads");
    const int batch = argc > 5 ? positive(argv[5], "batch") : 1;
    const int reps = argc > 6 ? positive(argv[6], "reps") : 3;
    auto model = ibl_model_load(argv[2], mp);
    const ibl_modality mod = ibl_modality_from_name(argv[3]);
    if (mod == IBL_MOD_COUNT) ibl_throw("ERR_INVALID_ARG", "unknown modality '%s'", argv[3]);
    const ibl_encoder_batch b = synthetic_batch(*model, mod, batch);

    ibl_encode(*model, b);  // warm-up: pages in the weights
    double best = 1e30;
    for (int i = 0; i < reps; ++i) {
        const double t0 = now_ms();
        ibl_encode(*model, b);
        best = std::min(best, now_ms() - t0);
    }
    profiler prof;
    model->eval_cb = profiler::cb;
    model->eval_cb_data = &prof;
    ibl_encode(*model, b);

    std::vector<std::pair<std::string, op_stat>> rows(prof.by_key.begin(), prof.by_key.end());
    std::sort(rows.begin(), rows.end(), [](const auto & a, const auto & c) { return a.second.ms > c.second.ms; });
    double total = 0, mm_ms = 0, mm_flop = 0;
    for (const auto & r : rows) {
        total += r.second.ms;
        if (r.second.flop > 0) { mm_ms += r.second.ms; mm_flop += r.second.flop; }
    }
    printf("%s %s, %d item(s), %d thread(s): %.1f ms per call (best of %d); per-op (each node alone): %.1f ms\n",
           model->file_type.c_str(), argv[3], batch, mp.n_threads, best, reps, total);
    printf("mul_mat: %.1f ms, %.1f GFLOP, %.1f GFLOP/s\n", mm_ms, mm_flop / 1e9, mm_flop / mm_ms / 1e6);
    printf("%-48s %9s %6s %6s %9s\n", "op", "ms", "%", "count", "GFLOP/s");
    for (const auto & [key, s] : rows) {
        printf("%-48s %9.2f %6.1f %6d", key.c_str(), s.ms, 100.0 * s.ms / total, s.count);
        if (s.flop > 0) printf(" %9.1f", s.flop / s.ms / 1e6);
        printf("\n");
    }
    return 0;
}
