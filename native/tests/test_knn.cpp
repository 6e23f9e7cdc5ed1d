// kNN cache (ibl_knn): search and blend against the fixtures' knn.index and manifest.
//
// IBL_CACHE_GGUF / IBL_CACHE_GGUF_F16 name the fixture cache converted by `convert cache` at f32 /
// f16 (test/convert-cache.test.mjs sets them). Unset, the test writes equivalent caches itself with
// the layout of ibl_keys.h. IBL_KNN_DUMP, when set, is a folder that receives the blended vectors
// (<case>_f32.npy, <case>_f16.npy) for the JS test, which runs them through the bind network and
// compares with expected/llm_<case>_visual_knn.npy.
#include "ibl_test.h"
#include "ibl_knn.h"
#include "ibl_gguf.h"
#include "ibl_keys.h"
#include "ibl_npy.h"

#include "nlohmann/json.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>

namespace {

using json = nlohmann::json;

// The fixture's faiss IndexFlatIP, read directly (header layout: faiss/impl/index_read.cpp).
struct flat_index {
    int64_t d = 0, n = 0;
    std::vector<float> x;  // n × d
    const float * row(int64_t i) const { return x.data() + i * d; }
};

flat_index read_flat_index(const std::string & path) {
    const std::vector<uint8_t> b = ibl_read_file(path);
    flat_index f;
    if (b.size() < 45 || memcmp(b.data(), "IxFI", 4) != 0) ibl_throw("ERR_INDEX_INVALID", "%s: not an IndexFlatIP", path.c_str());
    int32_t d;
    int64_t n;
    uint64_t nf;
    memcpy(&d, b.data() + 4, 4);
    memcpy(&n, b.data() + 8, 8);
    memcpy(&nf, b.data() + 37, 8);
    if (nf != (uint64_t) (n * d) || b.size() < 45 + nf * 4) ibl_throw("ERR_INDEX_INVALID", "%s: bad sizes", path.c_str());
    f.d = d;
    f.n = n;
    f.x.resize(nf);
    memcpy(f.x.data(), b.data() + 45, nf * 4);
    return f;
}

struct cache_spec {
    ggml_type   type = GGML_TYPE_F32;
    int64_t     chunk_rows = 1 << 16;
    std::string metric = "ip";
    std::string arch = IBL_ARCH_CACHE;
    int64_t     meta_dim = -1;          // written instead of the real dimension when >= 0
    int64_t     meta_chunk_rows = -1;   // written instead of chunk_rows when >= 0
    bool        drop_last_chunk = false;
};

// Writes a cache GGUF in the layout of `imagebind-llm convert cache` (or a broken variant of it).
void write_cache(const std::string & path, const flat_index & f, const cache_spec & s) {
    const int64_t rows_per = std::min<int64_t>(s.chunk_rows, f.n);
    const int64_t n_chunks = (f.n + rows_per - 1) / rows_per;
    ibl_gguf_writer w;
    w.set_str(IBL_KEY_ARCH, s.arch);
    w.set_str(IBL_KEY_NAME, "test");
    w.set_str(IBL_KEY_FILE_TYPE, ggml_type_name(s.type));
    w.set_u32(IBL_KEY_CACHE_DIM, (uint32_t) (s.meta_dim >= 0 ? s.meta_dim : f.d));
    w.set_u64(IBL_KEY_CACHE_COUNT, (uint64_t) f.n);
    w.set_str(IBL_KEY_CACHE_METRIC, s.metric);
    w.set_u32(IBL_KEY_CACHE_CHUNK_ROWS, (uint32_t) (s.meta_chunk_rows >= 0 ? s.meta_chunk_rows : rows_per));
    w.set_u32(IBL_KEY_CACHE_CHUNK_COUNT, (uint32_t) n_chunks);
    w.set_str(IBL_KEY_CACHE_SOURCE, s.metric == "l2" ? "IxF2" : "IxFI");
    const int64_t written = s.drop_last_chunk ? n_chunks - 1 : n_chunks;
    auto name = [](const char * fmt, int64_t k) { char b[64]; snprintf(b, sizeof(b), fmt, (int) k); return std::string(b); };
    for (int64_t k = 0; k < written; ++k) {
        const int64_t rows = std::min(rows_per, f.n - k * rows_per);
        w.add_tensor(name(IBL_TN_CACHE_FEATURES, k), s.type, {f.d, rows});
        if (s.metric == "l2") w.add_tensor(name(IBL_TN_CACHE_SQNORMS, k), GGML_TYPE_F32, {rows});
    }
    w.begin(path);
    for (int64_t k = 0; k < written; ++k) {
        const int64_t rows = std::min(rows_per, f.n - k * rows_per);
        const float * src = f.row(k * rows_per);
        const std::vector<uint8_t> bytes = ibl_convert_rows(s.type, src, rows, f.d);
        w.write_tensor_data(name(IBL_TN_CACHE_FEATURES, k), bytes.data(), bytes.size());
        if (s.metric == "l2") {
            std::vector<float> sq((size_t) rows);
            for (int64_t r = 0; r < rows; ++r) {
                double a = 0;
                for (int64_t i = 0; i < f.d; ++i) a += (double) src[r * f.d + i] * src[r * f.d + i];
                sq[(size_t) r] = (float) a;
            }
            w.write_tensor_data(name(IBL_TN_CACHE_SQNORMS, k), sq.data(), sq.size() * sizeof(float));
        }
    }
    w.finish();
}

// Brute force over all rows in double: indices best first (ties: lower index first).
std::vector<int64_t> brute_order(const flat_index & f, const float * q, bool l2, std::vector<double> * scores = nullptr) {
    std::vector<double> s((size_t) f.n);
    for (int64_t r = 0; r < f.n; ++r) {
        double a = 0;
        for (int64_t i = 0; i < f.d; ++i) {
            const double x = f.row(r)[i];
            a += l2 ? (q[i] - x) * (q[i] - x) : q[i] * x;
        }
        s[(size_t) r] = a;
    }
    std::vector<int64_t> idx((size_t) f.n);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return l2 ? s[a] < s[b] : s[a] > s[b]; });
    if (scores) *scores = s;
    return idx;
}

// fixtures README §6.1 step 3, in double, straight from the faiss rows.
std::vector<float> reference_blend(const flat_index & f, const std::vector<float> & q, int k, double t, double w) {
    std::vector<double> s;
    const std::vector<int64_t> idx = brute_order(f, q.data(), false, &s);
    double m = s[(size_t) idx[0]], z = 0;
    std::vector<double> p((size_t) k), c((size_t) f.d, 0.0);
    for (int j = 0; j < k; ++j) z += (p[(size_t) j] = std::exp(t * (s[(size_t) idx[(size_t) j]] - m)));
    for (int j = 0; j < k; ++j) {
        for (int64_t i = 0; i < f.d; ++i) c[(size_t) i] += p[(size_t) j] / z * f.row(idx[(size_t) j])[i];
    }
    double cn = 0, vn = 0;
    for (double x : c) cn += x * x;
    cn = std::sqrt(cn);
    std::vector<double> v((size_t) f.d);
    for (int64_t i = 0; i < f.d; ++i) { v[(size_t) i] = (1 - w) * q[(size_t) i] + w * c[(size_t) i] / cn; vn += v[(size_t) i] * v[(size_t) i]; }
    std::vector<float> out((size_t) f.d);
    for (int64_t i = 0; i < f.d; ++i) out[(size_t) i] = (float) (v[(size_t) i] / std::sqrt(vn));
    return out;
}

std::string indices_str(const std::vector<ibl_knn_hit> & h) {
    std::string s;
    for (const auto & x : h) s += (s.empty() ? "" : " ") + std::to_string(x.index);
    return s;
}

struct knn_case {
    std::string name;
    std::vector<float> query;
    std::vector<int64_t> indices;
    std::vector<double> sims;
    int k = 10;
    double t = 20, weight = 0.5;
};

// Compares search hits with the manifest's neighbours; returns the largest similarity difference and
// sets `why` on a mismatch. With tie_tol > 0 (f16 rows), the set must be the manifest's and the order
// may differ only between neighbours whose manifest similarities are within tie_tol: rounding the
// stored rows to f16 moves similarities by up to ~1e-4, which can swap near-ties (image_audio's 4th
// and 5th differ by 1.4e-5). The manifest guarantees a gap >= 3e-3 after the 10th, so the set is exact.
double compare_hits(const std::vector<ibl_knn_hit> & hits, const knn_case & c, double tie_tol, std::string & why) {
    if (hits.size() != c.indices.size()) { why = ": " + std::to_string(hits.size()) + " hits"; return INFINITY; }
    double err = 0;
    for (size_t j = 0; j < hits.size(); ++j) {
        const auto it = std::find(c.indices.begin(), c.indices.end(), hits[j].index);
        if (it == c.indices.end()) { why = ": " + std::to_string(hits[j].index) + " is not in the manifest's list"; return INFINITY; }
        const size_t pos = (size_t) (it - c.indices.begin());
        err = std::max(err, std::fabs(hits[j].score - c.sims[pos]));
        if (pos != j && !(std::fabs(c.sims[pos] - c.sims[j]) <= tie_tol)) {
            why = ": " + std::to_string(hits[j].index) + " at place " + std::to_string(j) + ", the manifest has it at " + std::to_string(pos);
        }
    }
    return err;
}

void check_fixture_cache(ibl_test & t, const std::string & path, const char * label, bool f16, const flat_index & f,
                         const std::vector<knn_case> & cases) {
    const std::string tag = std::string("knn ") + label + ": ";
    const double sim_tol = f16 ? 1e-3 : 1e-5;
    const double cos_min = f16 ? 0.9999 : 0.99999;
    const double rel = f16 ? 1e-2 : 1e-4;
    ibl_knn_params kp;
    kp.n_threads = 2;
    auto knn = ibl_knn_load(path, kp);
    t.check(knn->dim == f.d && knn->count == f.n && knn->metric == IBL_KNN_METRIC_IP,
            tag + "dimension " + std::to_string(knn->dim) + ", count " + std::to_string(knn->count) + ", metric ip");
    t.check(knn->file_type == (f16 ? "f16" : "f32"), tag + "file type " + knn->file_type);
    t.check(knn->mapped, tag + "features used in place from a memory map");

    // Row 0 as stored: exact at f32, f16-rounded at f16.
    const std::vector<float> r0 = ibl_knn_row(*knn, 0), rl = ibl_knn_row(*knn, f.n - 1);
    double e0 = 0;
    for (int64_t i = 0; i < f.d; ++i) {
        e0 = std::max(e0, (double) std::fabs(r0[(size_t) i] - f.row(0)[i]));
        e0 = std::max(e0, (double) std::fabs(rl[(size_t) i] - f.row(f.n - 1)[i]));
    }
    t.check(f16 ? e0 <= 1e-3 : e0 == 0, tag + "first and last rows equal the faiss rows (max diff " + std::to_string(e0) + ")");

    std::vector<float> batch;
    std::vector<ibl_knn_hit> single;
    for (const knn_case & c : cases) {
        const std::vector<ibl_knn_hit> hits = ibl_knn_search(*knn, c.query.data(), 1, c.k);
        single.insert(single.end(), hits.begin(), hits.end());
        std::string why;
        const double sim_err = compare_hits(hits, c, f16 ? sim_tol : 0.0, why);
        t.check(why.empty(), tag + c.name + ": indices " + indices_str(hits) + (f16 ? " (the manifest's set; order up to near-ties)" : "") + why);
        char buf[96];
        snprintf(buf, sizeof(buf), ": similarities within %.0e (max diff %.3g)", sim_tol, sim_err);
        t.check(why.empty() && sim_err <= sim_tol, tag + c.name + buf);

        ibl_knn_blend_params bp;
        bp.k = c.k;
        bp.t = (float) c.t;
        bp.weight = (float) c.weight;
        std::vector<ibl_knn_hit> used;
        const std::vector<float> v = ibl_knn_blend(*knn, c.query.data(), bp, &used);
        t.check(indices_str(used) == indices_str(hits), tag + c.name + ": blend uses the searched neighbours");
        t.check_close(v, reference_blend(f, c.query, c.k, c.t, c.weight), tag + c.name + ": blended vector vs the README formula in double", rel, cos_min);
        double n2 = 0;
        for (float x : v) n2 += (double) x * x;
        t.check(std::fabs(n2 - 1) < 1e-5, tag + c.name + ": blended vector has unit length");
        if (const char * dump = getenv("IBL_KNN_DUMP")) {
            ibl_npy_save_f32(std::string(dump) + "/" + c.name + (f16 ? "_f16.npy" : "_f32.npy"), {1, f.d}, v.data());
        }
        batch.insert(batch.end(), c.query.begin(), c.query.end());
    }
    // All queries in one matmul give the same answers.
    const std::vector<ibl_knn_hit> all = ibl_knn_search(*knn, batch.data(), (int64_t) cases.size(), 10);
    bool same = all.size() == single.size();
    for (size_t j = 0; same && j < all.size(); ++j) same = all[j].index == single[j].index && all[j].score == single[j].score;
    t.check(same, tag + "a batch of " + std::to_string(cases.size()) + " queries matches the single searches");
    // More queries than one matmul group (IBL_KNN_MAX_GROUP): groups of 64, 64 and 2.
    std::vector<float> many;
    const int64_t n_many = 2 * IBL_KNN_MAX_GROUP + 2;
    for (int64_t j = 0; j < n_many; ++j) many.insert(many.end(), cases[(size_t) j % cases.size()].query.begin(), cases[(size_t) j % cases.size()].query.end());
    const std::vector<ibl_knn_hit> grouped = ibl_knn_search(*knn, many.data(), n_many, 10);
    same = (int64_t) grouped.size() == n_many * 10;
    for (int64_t j = 0; same && j < n_many; ++j) {
        for (size_t i = 0; i < 10; ++i) same = same && grouped[(size_t) j * 10 + i].index == single[(j % cases.size()) * 10 + i].index;
    }
    t.check(same, tag + std::to_string(n_many) + " queries in groups match the single searches");
}

void check_layouts(ibl_test & t, const std::string & dir, const flat_index & f, const std::vector<knn_case> & cases) {
    // Several chunks (the last one partial), mapped and read: the same neighbours as brute force.
    for (int variant = 0; variant < 3; ++variant) {
        cache_spec s;
        s.chunk_rows = 10;
        s.type = variant == 2 ? GGML_TYPE_F16 : GGML_TYPE_F32;
        const std::string p = dir + "/chunked" + std::to_string(variant) + ".gguf";
        write_cache(p, f, s);
        ibl_knn_params kp;
        kp.n_threads = 3;
        kp.use_mmap = variant != 1;
        auto knn = ibl_knn_load(p, kp);
        const std::string tag = std::string("knn chunks of 10 rows, ") + (variant == 2 ? "f16" : "f32") + (variant == 1 ? ", read" : ", mapped") + ": ";
        t.check(knn->mapped == (variant != 1), tag + "mapping as asked");
        bool ok = true;
        for (const knn_case & c : cases) {
            const auto hits = ibl_knn_search(*knn, c.query.data(), 1, f.n);
            const auto order = brute_order(f, c.query.data(), false);
            if (variant == 2) {
                // f16: the first 10 are the manifest's (up to near-ties, see compare_hits).
                std::string why;
                compare_hits(std::vector<ibl_knn_hit>(hits.begin(), hits.begin() + 10), c, 1e-3, why);
                ok = ok && why.empty();
            } else {
                for (int64_t j = 0; j < f.n; ++j) ok = ok && hits[(size_t) j].index == order[(size_t) j];
            }
        }
        t.check(ok, tag + (variant == 2 ? "top 10 as the manifest" : "k = count gives the full brute-force order"));
        const auto more = ibl_knn_search(*knn, cases[0].query.data(), 1, f.n + 100);
        t.check((int64_t) more.size() == f.n, tag + "k beyond the cache returns every row once");
        const std::vector<float> r = ibl_knn_row(*knn, 25);
        t.check(variant == 2 || std::equal(r.begin(), r.end(), f.row(25)), tag + "row 25 (chunk 2) reads back");
    }

    // Ties: identical rows come back lowest index first, across chunk boundaries.
    {
        flat_index dup = f;
        for (int64_t r : {7, 12, 31, 50}) std::copy(f.row(3), f.row(3) + f.d, dup.x.begin() + r * f.d);
        cache_spec s;
        s.chunk_rows = 16;
        write_cache(dir + "/ties.gguf", dup, s);
        auto knn = ibl_knn_load(dir + "/ties.gguf");
        const auto hits = ibl_knn_search(*knn, f.row(3), 1, 5);
        t.check(indices_str(hits) == "3 7 12 31 50", "knn ties: equal scores in index order (" + indices_str(hits) + ")");
    }

    // L2: squared distances ascending, like faiss IndexFlatL2; blending is refused.
    {
        flat_index sc = f;
        for (int64_t r = 0; r < f.n; ++r) for (int64_t i = 0; i < f.d; ++i) sc.x[(size_t) (r * f.d + i)] *= 0.5f + (float) (r % 5) * 0.25f;
        cache_spec s;
        s.metric = "l2";
        s.chunk_rows = 20;
        write_cache(dir + "/l2.gguf", sc, s);
        auto knn = ibl_knn_load(dir + "/l2.gguf");
        t.check(knn->metric == IBL_KNN_METRIC_L2, "knn l2: metric l2");
        bool ok = true;
        double err = 0;
        for (const knn_case & c : cases) {
            std::vector<double> d2;
            const auto order = brute_order(sc, c.query.data(), true, &d2);
            const auto hits = ibl_knn_search(*knn, c.query.data(), 1, 10);
            for (int j = 0; j < 10; ++j) {
                ok = ok && hits[(size_t) j].index == order[(size_t) j];
                err = std::max(err, std::fabs(hits[(size_t) j].score - d2[(size_t) order[(size_t) j]]));
            }
        }
        t.check(ok && err < 1e-5, "knn l2: the 10 smallest squared distances, ascending (max diff " + std::to_string(err) + ")");
        t.check_throws([&] { ibl_knn_blend(*knn, cases[0].query.data()); }, "ERR_INVALID_ARG", "inner-product", "knn l2: blending refused");
    }
}

void check_errors(ibl_test & t, const std::string & dir, const flat_index & f, const std::string & good) {
    t.check_throws([&] { ibl_knn_load(dir + "/missing.gguf"); }, "ERR_FILE_NOT_FOUND", "missing.gguf", "knn error: missing file");
    t.check_throws([&] { ibl_knn_load(t.tiny("knn.index")); }, "ERR_GGUF_INVALID", "not a GGUF", "knn error: the faiss file itself");
    auto broken = [&](const char * name, cache_spec s, const char * code, const char * needle, const char * what) {
        const std::string p = dir + "/" + name;
        write_cache(p, f, s);
        t.check_throws([&] { ibl_knn_load(p); }, code, needle, std::string("knn error: ") + what);
    };
    cache_spec s;
    s.arch = "imagebind";
    broken("arch.gguf", s, "ERR_MODEL_WRONG_TYPE", "not a kNN cache", "another architecture");
    s = {};
    s.metric = "cosine";
    broken("metric.gguf", s, "ERR_MODEL_INVALID", "cosine", "unknown metric");
    s = {};
    s.meta_dim = f.d * 2;
    broken("dim.gguf", s, "ERR_MODEL_INVALID", "shape", "dimension disagrees with the tensors");
    s = {};
    s.meta_dim = 0;
    broken("dim0.gguf", s, "ERR_MODEL_INVALID", "cache.dimension", "dimension 0");
    s = {};
    s.chunk_rows = 16;
    s.drop_last_chunk = true;
    broken("chunk.gguf", s, "ERR_MODEL_INVALID", "missing tensor 'cache.features.3'", "a chunk missing");
    s = {};
    s.chunk_rows = 16;
    s.meta_chunk_rows = 32;
    broken("chunkrows.gguf", s, "ERR_MODEL_INVALID", "cache.chunk_count", "chunk_rows disagrees with the chunk count");

    auto knn = ibl_knn_load(good);
    std::vector<float> q(f.row(0), f.row(0) + f.d);
    t.check_throws([&] { ibl_knn_search(*knn, q.data(), 1, 0); }, "ERR_INVALID_ARG", "k must be", "knn error: k = 0");
    ibl_knn_blend_params bp;
    bp.weight = 1.5f;
    t.check_throws([&] { ibl_knn_blend(*knn, q.data(), bp); }, "ERR_INVALID_ARG", "cache_weight", "knn error: weight outside [0, 1]");
    q[5] = std::nanf("");
    t.check_throws([&] { ibl_knn_search(*knn, q.data(), 1, 10); }, "ERR_INVALID_ARG", "NaN", "knn error: NaN in the query");
}

}  // namespace

void test_knn(ibl_test & t) {
    const flat_index f = read_flat_index(t.tiny("knn.index"));
    std::ifstream mf(t.tiny("manifest.json"));
    const json manifest = json::parse(mf);
    std::vector<knn_case> cases;
    for (const auto & c : manifest["llm_cases"]) {
        if (!c["expected"].contains("knn_search")) continue;
        const auto & ks = c["expected"]["knn_search"];
        knn_case kc;
        kc.name = c["name"];
        kc.query = ibl_npy_load(t.tiny(c["expected"]["visual_in"].get<std::string>())).to_f32();
        kc.indices = ks["indices"].get<std::vector<int64_t>>();
        kc.sims = ks["sims"].get<std::vector<double>>();
        kc.k = ks["cache_size"];
        kc.t = ks["cache_t"];
        kc.weight = ks["cache_weight"];
        if ((int64_t) kc.query.size() != f.d) ibl_throw("ERR_INPUT_SHAPE", "%s: visual_in has %zu values, the index %lld", kc.name.c_str(), kc.query.size(), (long long) f.d);
        cases.push_back(std::move(kc));
    }
    if (!t.check(!cases.empty(), "knn: the manifest has cases with knn_search")) return;

    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("ibl-knn-test-" + std::to_string((long long) std::rand()) + std::to_string((long long) time(nullptr)));
    fs::create_directories(dir);
    struct cleanup { fs::path p; ~cleanup() { std::error_code ec; fs::remove_all(p, ec); } } guard{dir};

    std::string f32 = getenv("IBL_CACHE_GGUF") ? getenv("IBL_CACHE_GGUF") : "";
    std::string f16 = getenv("IBL_CACHE_GGUF_F16") ? getenv("IBL_CACHE_GGUF_F16") : "";
    if (f32.empty() || f16.empty()) printf("note: IBL_CACHE_GGUF / IBL_CACHE_GGUF_F16 unset: testing caches written by the test itself\n");
    if (f32.empty()) {
        f32 = (dir / "cache-f32.gguf").string();
        write_cache(f32, f, {});
    }
    if (f16.empty()) {
        f16 = (dir / "cache-f16.gguf").string();
        cache_spec s;
        s.type = GGML_TYPE_F16;
        write_cache(f16, f, s);
    }
    check_fixture_cache(t, f32, "f32", false, f, cases);
    check_fixture_cache(t, f16, "f16", true, f, cases);
    check_layouts(t, dir.string(), f, cases);
    check_errors(t, dir.string(), f, f32);
}
