// The ggml CPU kernels our patches change, against double-precision references:
// - mul_mat (0003-cpu-blocked-float-gemm.patch): every shape class the blocked GEMM takes (edges of its
//   register tile and k blocks, a weight shared by a batch, one weight per batch entry, strided
//   activations, a bias ADD fused after it and a residual ADD or gelu_erf after that) for f32/f16/bf16/q8_0
//   weights and 1–3 threads;
// - gelu_erf (0004-cpu-vector-gelu-erf.patch) over its whole range, tails included;
// - layer norm, NORM + MUL + ADD fused (0009-cpu-fused-layer-norm.patch);
// - flash_attn_ext (0005-cpu-flash-attn-tiles.patch) where query and key counts are not multiples of its
//   64-row tiles, with and without a causal mask, with K and V tiles kept per head and packed per use, K
//   transposed by 16 x 16 blocks and by elements.
#include "ibl_test.h"

#include "ibl_gguf.h"
#include "ibl_system.h"

#include "ibl_backend.h"
#include "ggml-alloc.h"

#include "ggml-backend.h"
#include "ggml.h"

#include <cmath>
#include <random>
#include <vector>

namespace {

struct case_shape {
    int64_t K, N, M, B;  // weight N x K; activations M x K per batch entry, B entries
    bool per_entry_weight;  // src0 [K, N, B] instead of [K, N]
    bool strided_x;         // src1 as a permuted view ([K, B, M] stored)
    bool bias = false;      // + a bias row (the ADD the blocked GEMM fuses)
    int  residual = 0;      // then + a tensor of the result's shape (the second ADD it fuses): 1 into a new
                            // tensor, 2 in place into that tensor's memory
    bool gelu = false;      // or then gelu_erf (the GELU it fuses)
};

// Whether the loaded CPU module has the patches' vector kernels (the blocked GEMM, the vector gelu_erf):
// AVX2 + FMA or AVX-512. Older variants (x64, SSE4.2, Sandy/Ivy Bridge, Piledriver) run ggml's own
// paths, which round f16-weight activations to f16 and take gelu_erf's far tail less exactly.
bool cpu_has_vector_kernels() {
    for (const ibl_backend_info & b : ibl_get_backends()) {
        if (b.name != "CPU") continue;
        auto has = [&](const char * f) {
            for (const auto & kv : b.features) if (kv.first == f && kv.second == "1") return true;
            return false;
        };
        return has("AVX512") || (has("AVX2") && has("FMA"));
    }
    return false;
}

// Row r of an n_per_row-wide matrix after a round trip through `type`.
std::vector<float> round_trip(ggml_type type, const std::vector<float> & v, int64_t rows, int64_t n_per_row) {
    if (type == GGML_TYPE_F32) return v;
    const std::vector<uint8_t> q = ibl_convert_rows(type, v.data(), rows, n_per_row);
    std::vector<float> out(v.size());
    ggml_get_type_traits(type)->to_float(q.data(), out.data(), (int64_t) v.size());
    return out;
}

void run_case(ibl_test & t, ggml_backend_t backend, const case_shape & c, ggml_type type, int threads, bool vector_kernels) {
    const int64_t WB = c.per_entry_weight ? c.B : 1;
    ggml_init_params ip = { 8 * ggml_tensor_overhead() + ggml_graph_overhead(), nullptr, true };
    ggml_context * ctx = ggml_init(ip);
    ggml_tensor * w = ggml_new_tensor_3d(ctx, type, c.K, c.N, WB);
    ggml_tensor * xs = c.strided_x ? ggml_new_tensor_3d(ctx, GGML_TYPE_F32, c.K, c.B, c.M) : ggml_new_tensor_3d(ctx, GGML_TYPE_F32, c.K, c.M, c.B);
    ggml_tensor * x = c.strided_x ? ggml_permute(ctx, xs, 0, 2, 1, 3) : xs;  // [K, M, B] either way
    ggml_tensor * y = ggml_mul_mat(ctx, w, x);                                // [N, M, B]
    ggml_tensor * bias = c.bias ? ggml_new_tensor_1d(ctx, GGML_TYPE_F32, c.N) : nullptr;
    if (bias) y = ggml_add(ctx, y, bias);
    ggml_tensor * res = c.residual ? ggml_new_tensor_3d(ctx, GGML_TYPE_F32, c.N, c.M, c.B) : nullptr;
    if (res) y = c.residual == 2 ? ggml_add_inplace(ctx, res, y) : ggml_add(ctx, y, res);
    if (c.gelu) y = ggml_gelu_erf(ctx, y);
    ggml_cgraph * gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, y);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, backend);

    std::mt19937 rng((unsigned) (c.K * 131 + c.N * 17 + c.M));
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> wv((size_t) (c.K * c.N * WB)), xv((size_t) (c.K * c.M * c.B));
    for (auto & v : wv) v = u(rng);
    for (auto & v : xv) v = u(rng);
    const std::vector<uint8_t> wq = ibl_convert_rows(type, wv.data(), c.N * WB, c.K);
    ggml_backend_tensor_set(w, wq.data(), 0, wq.size());
    ggml_backend_tensor_set(xs, xv.data(), 0, ggml_nbytes(xs));
    std::vector<float> bv((size_t) c.N);
    for (auto & v : bv) v = u(rng);
    if (bias) ggml_backend_tensor_set(bias, bv.data(), 0, ggml_nbytes(bias));
    std::vector<float> rv(res ? (size_t) ggml_nelements(res) : 0);
    for (auto & v : rv) v = u(rng);
    if (res) ggml_backend_tensor_set(res, rv.data(), 0, ggml_nbytes(res));
    ibl_backend_set_n_threads(backend, threads);
    const bool ok_compute = ggml_backend_graph_compute(backend, gf) == GGML_STATUS_SUCCESS;
    std::vector<float> got((size_t) ggml_nelements(y));
    ggml_backend_tensor_get(y, got.data(), 0, ggml_nbytes(y));

    // Reference in double from the weights as stored; bf16 kernels also round the activations to bf16,
    // so their tolerance is bf16's (2^-8 of the sum of |products|), the others f32 rounding.
    const std::vector<float> wr = round_trip(type, wv, c.N * WB, c.K);
    // Where the blocked GEMM is not compiled, ggml's own paths quantize x too: to q8_0 for q8_0 weights,
    // to f16 for f16 weights. The blocked GEMM dequantizes q8_0 weights and keeps x in f32.
    const double tol = type == GGML_TYPE_BF16 ? 8e-3 : type == GGML_TYPE_Q8_0 && !vector_kernels ? 1e-2
                     : type == GGML_TYPE_F16 && !vector_kernels ? 2e-3 : 2e-6;
    double worst = 0;
    for (int64_t b = 0; b < c.B; ++b)
    for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = 0; n < c.N; ++n) {
        const float * wrow = wr.data() + ((c.per_entry_weight ? b : 0) * c.N + n) * c.K;
        const float * xrow = xv.data() + (c.strided_x ? (m * c.B + b) : (b * c.M + m)) * c.K;
        double s = (c.bias ? bv[(size_t) n] : 0.0) + (res ? rv[(size_t) ((b * c.M + m) * c.N + n)] : 0.0), a = 0;
        for (int64_t k = 0; k < c.K; ++k) { s += (double) wrow[k] * xrow[k]; a += std::fabs((double) wrow[k] * xrow[k]); }
        if (c.gelu) s = 0.5 * s * std::erfc(-s / std::sqrt(2.0));
        worst = std::fmax(worst, std::fabs(got[(size_t) ((b * c.M + m) * c.N + n)] - s) / (a + 1e-30));
    }
    char what[200];
    snprintf(what, sizeof(what), "mul_mat %s K=%lld N=%lld M=%lld B=%lld%s%s%s%s%s, %d thread(s): worst error %.2g of sum|w x| (tol %.0g)",
             ggml_type_name(type), (long long) c.K, (long long) c.N, (long long) c.M, (long long) c.B,
             c.per_entry_weight ? ", weight per entry" : "", c.strided_x ? ", strided x" : "", c.bias ? ", + bias" : "",
             c.residual == 1 ? ", + residual" : c.residual == 2 ? ", + residual in place" : "", c.gelu ? ", gelu_erf" : "", threads, worst, tol);
    t.check(ok_compute && worst <= tol, what);
    ggml_backend_buffer_free(buf);
    ggml_free(ctx);
}

// y = x/2 (1 + erf(x/sqrt 2)) on a grid over [-12, 12] and special values; the reference uses erfc, so the
// tail x << 0 (where 1 + erf cancels) is checked relative to its tiny values too.
void check_gelu_erf(ibl_test & t, ggml_backend_t backend, bool vector_kernels) {
    std::vector<float> xs;
    for (int i = -120000; i <= 120000; ++i) xs.push_back((float) i * 1e-4f);
    for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 30.0f, -30.0f, INFINITY}) xs.push_back(v);
    ggml_init_params ip = { 4 * ggml_tensor_overhead() + ggml_graph_overhead(), nullptr, true };
    ggml_context * ctx = ggml_init(ip);
    ggml_tensor * x = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, (int64_t) xs.size());
    ggml_tensor * y = ggml_gelu_erf(ctx, x);
    ggml_cgraph * gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, y);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, backend);
    ggml_backend_tensor_set(x, xs.data(), 0, ggml_nbytes(x));
    ibl_backend_set_n_threads(backend, 2);
    const bool ok_compute = ggml_backend_graph_compute(backend, gf) == GGML_STATUS_SUCCESS;
    std::vector<float> ys(xs.size());
    ggml_backend_tensor_get(y, ys.data(), 0, ggml_nbytes(y));
    double worst_abs = 0, worst_rel = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
        const double ref = std::isinf(xs[i]) ? INFINITY : 0.5 * xs[i] * std::erfc(-(double) xs[i] / std::sqrt(2.0));
        if (std::isinf(ref)) { worst_abs = std::fmax(worst_abs, ys[i] == ref ? 0.0 : 1.0); continue; }
        const double err = std::fabs(ys[i] - ref);
        worst_abs = std::fmax(worst_abs, err / std::fmax(1.0, std::fabs(ref)));
        if (std::fabs(ref) > 1e-30) worst_rel = std::fmax(worst_rel, err / std::fabs(ref));
    }
    char what[160];
    snprintf(what, sizeof(what), "gelu_erf: worst error %.2g (of max(1, |y|)), %.2g relative%s", worst_abs, worst_rel,
             vector_kernels ? "" : " (ggml's own path: the tail is not checked relative)");
    t.check(ok_compute && worst_abs <= 1e-6 && (worst_rel <= 1e-4 || !vector_kernels), what);
    ggml_backend_buffer_free(buf);
    ggml_free(ctx);
}

// Layer norm as the encoders build it, norm(x) * w + b (NORM, MUL, ADD: fused by the CPU backend when w
// and b are rows), against double sums; `full`: w and b of x's whole shape, which is not fused.
void check_layer_norm(ibl_test & t, ggml_backend_t backend, int64_t n, int64_t rows, bool full) {
    ggml_init_params ip = { 8 * ggml_tensor_overhead() + ggml_graph_overhead(), nullptr, true };
    ggml_context * ctx = ggml_init(ip);
    ggml_tensor * x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n, rows);
    ggml_tensor * w = full ? ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n, rows) : ggml_new_tensor_1d(ctx, GGML_TYPE_F32, n);
    ggml_tensor * b = full ? ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n, rows) : ggml_new_tensor_1d(ctx, GGML_TYPE_F32, n);
    const float eps = 1e-6f;
    ggml_tensor * y = ggml_add(ctx, ggml_mul(ctx, ggml_norm(ctx, x, eps), w), b);
    ggml_cgraph * gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, y);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, backend);
    std::mt19937 rng((unsigned) (n * 7 + rows));
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    auto fill = [&](ggml_tensor * tt, float offset) {
        std::vector<float> v((size_t) ggml_nelements(tt));
        for (auto & e : v) e = offset + u(rng);
        ggml_backend_tensor_set(tt, v.data(), 0, ggml_nbytes(tt));
        return v;
    };
    const std::vector<float> xv = fill(x, 3.0f), wv = fill(w, 0.0f), bv = fill(b, 0.0f);
    ibl_backend_set_n_threads(backend, 2);
    const bool ok_compute = ggml_backend_graph_compute(backend, gf) == GGML_STATUS_SUCCESS;
    std::vector<float> got((size_t) ggml_nelements(y));
    ggml_backend_tensor_get(y, got.data(), 0, ggml_nbytes(y));
    double worst = 0;
    for (int64_t r = 0; r < rows; ++r) {
        const float * xr = xv.data() + r * n;
        double mean = 0, var = 0;
        for (int64_t i = 0; i < n; ++i) mean += xr[i];
        mean /= (double) n;
        for (int64_t i = 0; i < n; ++i) var += (xr[i] - mean) * (xr[i] - mean);
        const double s = 1.0 / std::sqrt(var / (double) n + eps);
        for (int64_t i = 0; i < n; ++i) {
            const size_t wi = (size_t) (full ? r * n + i : i);
            const double ref = (xr[i] - mean) * s * wv[wi] + bv[wi];
            worst = std::fmax(worst, std::fabs(got[(size_t) (r * n + i)] - ref));
        }
    }
    char what[160];
    snprintf(what, sizeof(what), "layer norm n=%lld rows=%lld%s: worst error %.2g", (long long) n, (long long) rows,
             full ? " (weights of x's shape: not fused)" : "", worst);
    t.check(ok_compute && worst <= 1e-5, what);
    ggml_backend_buffer_free(buf);
    ggml_free(ctx);
}

// softmax(q k^T * scale + mask) v per head against double sums; q, k, v: [hd, L or Lk, H] f32, views of
// one [3 x hd, H, L] buffer as the encoders pass them.
void check_flash_attn(ibl_test & t, ggml_backend_t backend, int64_t hd, int64_t H, int64_t L, bool causal) {
    ggml_init_params ip = { 16 * ggml_tensor_overhead() + ggml_graph_overhead(), nullptr, true };
    ggml_context * ctx = ggml_init(ip);
    ggml_tensor * qkv = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, 3 * hd, H, L);  // row l: q, k, v of every head
    auto part = [&](int i) {  // [hd, L, H]
        return ggml_view_3d(ctx, qkv, hd, L, H, qkv->nb[2], qkv->nb[1], (size_t) i * hd * sizeof(float));
    };
    ggml_tensor * mask = causal ? ggml_new_tensor_2d(ctx, GGML_TYPE_F16, L, L) : nullptr;
    const float scale = 1.0f / std::sqrt((float) hd);
    ggml_tensor * out = ggml_flash_attn_ext(ctx, part(0), part(1), part(2), mask, scale, 0.0f, 0.0f);  // [hd, H, L]
    ggml_flash_attn_ext_set_prec(out, GGML_PREC_F32);
    ggml_cgraph * gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, out);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, backend);
    std::mt19937 rng((unsigned) (hd * 7 + L));
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x((size_t) ggml_nelements(qkv));
    for (auto & v : x) v = nd(rng);
    ggml_backend_tensor_set(qkv, x.data(), 0, ggml_nbytes(qkv));
    if (mask) {
        std::vector<ggml_fp16_t> m((size_t) (L * L));
        for (int64_t i = 0; i < L; ++i)
            for (int64_t j = 0; j < L; ++j) m[(size_t) (i * L + j)] = ggml_fp32_to_fp16(j <= i ? 0.0f : -INFINITY);
        ggml_backend_tensor_set(mask, m.data(), 0, ggml_nbytes(mask));
    }
    ibl_backend_set_n_threads(backend, 2);
    const bool ok_compute = ggml_backend_graph_compute(backend, gf) == GGML_STATUS_SUCCESS;
    std::vector<float> got((size_t) ggml_nelements(out));
    ggml_backend_tensor_get(out, got.data(), 0, ggml_nbytes(out));
    auto at = [&](int i, int64_t l, int64_t h, int64_t d) { return (double) x[(size_t) ((l * H + h) * 3 * hd + i * hd + d)]; };
    double worst = 0;
    std::vector<double> p((size_t) L);
    for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < L; ++i) {
        double mx = -INFINITY, sum = 0;
        const int64_t n = causal ? i + 1 : L;
        for (int64_t j = 0; j < n; ++j) {
            double s = 0;
            for (int64_t d = 0; d < hd; ++d) s += at(0, i, h, d) * at(1, j, h, d);
            p[(size_t) j] = s * scale;
            mx = std::fmax(mx, p[(size_t) j]);
        }
        for (int64_t j = 0; j < n; ++j) sum += (p[(size_t) j] = std::exp(p[(size_t) j] - mx));
        for (int64_t d = 0; d < hd; ++d) {
            double o = 0;
            for (int64_t j = 0; j < n; ++j) o += p[(size_t) j] * at(2, j, h, d);
            worst = std::fmax(worst, std::fabs(got[(size_t) ((i * H + h) * hd + d)] - o / sum));
        }
    }
    char what[160];
    snprintf(what, sizeof(what), "flash_attn_ext hd=%lld H=%lld L=%lld%s: worst error %.2g", (long long) hd, (long long) H,
             (long long) L, causal ? " causal" : "", worst);
    t.check(ok_compute && worst <= 1e-5, what);
    ggml_backend_buffer_free(buf);
    ggml_free(ctx);
}

}  // namespace

void test_kernels(ibl_test & t) {
    ggml_backend_t backend = ibl_cpu_backend_init(2);
    if (!t.check(backend != nullptr, "CPU backend")) return;
    const case_shape cases[] = {
        {64, 64, 257, 1, false, false},    // fixture-sized linear (257 tokens: the last row by dot products)
        {400, 40, 33, 1, false, false},    // a partial register tile, the 33rd row by dot products
        {1000, 13, 16, 1, false, false},   // smallest M, a weight panel smaller than one tile
        {17, 100, 70, 1, false, false},    // odd K (bf16 falls back to f32 pairs)
        {80, 36, 50, 3, false, false},     // weight shared by 3 batch entries: one GEMM over 150 rows
        {80, 65, 40, 4, true, true},       // a weight per entry (attention by mul_mat), strided activations
        {48, 24, 20, 2, true, false},      // 2 entries: fewer than the threads in some runs
        {768, 50, 600, 1, false, true},    // several shared blocks of packed rows
        {2600, 24, 40, 1, false, false},   // three k blocks
        {2601, 30, 20, 2, true, false},    // odd K over three k blocks, a weight per entry
        {1500, 40, 66, 2, false, false, true},  // + bias, fused into the last of two k blocks (bf16: one); last 4 rows by dot products
        {64, 36, 257, 1, false, true, true},    // + bias, one k block
        {1500, 40, 66, 2, false, false, true, 1},  // + bias + residual, fused into the last of two k blocks
        {64, 36, 257, 1, false, true, true, 2},    // + bias + residual in place, one k block: fused
        {1500, 40, 66, 1, false, false, true, 2},  // in place over two k blocks: not fused (partial sums would overwrite it)
        {1500, 40, 66, 2, false, false, true, 0, true},  // + bias, gelu_erf fused after the last of two k blocks
        {64, 60, 257, 1, false, true, true, 0, true},    // + bias, gelu_erf over a group of 48 columns and one of 12
        // bf16 k blocks hold up to 2560 values (f32 1280): K = 1500 is one block for bf16, 3000 two
        {3000, 40, 66, 2, false, false, true, 1},  // + bias + residual, fused into the last k block
        {3000, 40, 66, 1, false, false, true, 2},  // in place over two or three k blocks: not fused
    };
    const bool vector_kernels = cpu_has_vector_kernels();
    for (ggml_type type : {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0}) {
        for (const auto & c : cases) {
            if (c.K % ggml_blck_size(type) != 0) continue;
            for (int threads : {1, 3}) run_case(t, backend, c, type, threads, vector_kernels);
        }
    }
    check_gelu_erf(t, backend, vector_kernels);
    check_layer_norm(t, backend, 1280, 37, false);  // ViT-H's width
    check_layer_norm(t, backend, 77, 5, false);     // a row length past the vector width by 13
    check_layer_norm(t, backend, 64, 6, true);
    check_flash_attn(t, backend, 80, 4, 257, false);  // ViT-H: 4 full query/key tiles and one of 1
    check_flash_attn(t, backend, 64, 2, 77, true);    // text: 64 + 13, causal
    check_flash_attn(t, backend, 16, 3, 130, false);  // 64 + 64 + 2
    check_flash_attn(t, backend, 12, 2, 70, false);   // head size below the SIMD width: the untiled path
    check_flash_attn(t, backend, 40, 3, 600, false);  // three kept K/V tiles per head; K transposed by 16 x 16 blocks and a last 8 columns
    check_flash_attn(t, backend, 16, 1, 4200, true);  // past 64 key tiles: K packed per use, not kept
    ggml_backend_free(backend);
}
