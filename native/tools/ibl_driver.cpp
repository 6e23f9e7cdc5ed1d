// ibl-driver: the C++ core without Node. Used where Node is not available (e.g. the CUDA machine) and
// as a second, independent check of the core.
//
//   ibl-driver info                 versions, backends, devices, CPU features
//   ibl-driver inspect <file.gguf>  metadata keys and tensor table
//   ibl-driver selftest <dir>       writes a GGUF through the core writer, reads it back, checks it
//   ibl-driver encode <encoder.gguf> <modality> <input.npy> [device]
//                                   runs one preprocessed input tensor (fixtures' inputs/*.npy layout)
//                                   through an encoder; prints the raw head output (parity checks on GPUs)
//   ibl-driver matmul <M> <N> <K> <threads> [type] [reps]
//                                   one ggml mul_mat on the CPU backend: ms and GFLOP/s as JSON (benchmarks)
//   ibl-driver profile <encoder.gguf> <modality> <threads> [batch] [reps] [no-flash]
//                                   a trunk on a synthetic input: time per call and a per-op table
//   ibl-driver logits <llm.gguf> <bind.gguf> <prompt-file> [visual.npy|-] [device] [gpu-layers]
//                                   the prompt's last-token logits, with the bind network's output for
//                                   visual.npy injected (fixtures' llm_*_visual.npy), as JSON
//   ibl-driver greedy <llm.gguf> <bind.gguf> <prompt-file> <visual.npy|-> <n> [device] [gpu-layers]
//                                   n greedy tokens after the prompt, as JSON
//   ibl-driver placement <llm.gguf> <bind.gguf> <prompt-file> <visual.npy> [device] [gpu-layers]
//                                   where each layer's injection vector and weights live, as JSON
//   ibl-driver graph <llm.gguf> [device]
//                                   the nodes llama.cpp computes for a 1-token and a 7-token decode, without
//                                   and with an injection set, as JSON (checks the injection's graph cost)
// Each command prints the device it ran on and its time to stderr (gpu-check.sh compares them).
#include "ibl_driver_bench.h"
#include "ibl_error.h"
#include "ibl_gguf.h"
#include "ibl_system.h"

#include "gguf.h"
#include "ibl_npy.h"
#include "encoder/ibl_encoder.h"
#include "ibl_mmllm.h"

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

static int cmd_info() {
    const ibl_versions v = ibl_get_versions();
    printf("imagebind-llm %s, llama.cpp %s (%s), ggml %s\n", v.package.c_str(), v.llama_tag.c_str(),
           v.llama_commit.c_str(), v.ggml_version.c_str());
    const ibl_modules_info m = ibl_get_modules();
    printf("cpu variant %s (%s in %s)\n", m.cpu_variant.c_str(), m.cpu_module.c_str(), m.dir.c_str());
    for (const auto & b : ibl_get_backends()) {
        printf("backend %s:", b.name.c_str());
        for (const auto & f : b.features) printf(" %s=%s", f.first.c_str(), f.second.c_str());
        printf("\n");
        for (const auto & d : b.devices) {
            printf("  device %s (%s): %s, %.1f/%.1f GiB free\n", d.name.c_str(), d.type.c_str(), d.description.c_str(),
                   d.memory_free / 1073741824.0, d.memory_total / 1073741824.0);
        }
    }
    return 0;
}

static int cmd_inspect(const std::string & path) {
    const ibl_gguf_info info = ibl_gguf_inspect(path);
    printf("GGUF v%u, %zu keys, %zu tensors, data at %llu\n", info.version, info.kv.size(), info.tensors.size(),
           (unsigned long long) info.data_offset);
    for (const auto & kv : info.kv) printf("  %s: %s%s%s\n", kv.key.c_str(), kv.type.c_str(), kv.is_array ? " of " : "", kv.elem_type.c_str());
    for (const auto & t : info.tensors) {
        printf("  %-40s %-6s [", t.name.c_str(), t.type.c_str());
        for (size_t i = 0; i < t.shape.size(); ++i) printf("%s%lld", i ? ", " : "", (long long) t.shape[i]);
        printf("]\n");
    }
    return 0;
}

static bool check(bool ok, const char * what) {
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    return ok;
}

static int cmd_selftest(const std::string & dir) {
    const std::string path = dir + "/ibl-driver-selftest.gguf";
    std::vector<float> w(64 * 3);
    for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(0.37f * (float) i);
    {
        ibl_gguf_writer wr;
        wr.set_str("general.architecture", "selftest");
        wr.set_u32("selftest.n", 42);
        wr.set_arr_str("selftest.words", {"a", "bc"});
        const ggml_type types[3] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q8_0};
        const char * names[3] = {"w.f32", "w.f16", "w.q8_0"};
        for (int i = 0; i < 3; ++i) wr.add_tensor(names[i], types[i], {64, 3});
        wr.begin(path);
        for (int i = 0; i < 3; ++i) {
            const auto bytes = ibl_convert_rows(types[i], w.data(), 3, 64);
            wr.write_tensor_data(names[i], bytes.data(), bytes.size());
        }
        wr.finish();
    }
    bool ok = true;
    const ibl_gguf_info info = ibl_gguf_inspect(path);
    ok &= check(info.tensors.size() == 3, "three tensors read back");
    ok &= check(info.kv.size() >= 3 && info.kv[1].u64.size() == 1 && info.kv[1].u64[0] == 42, "u32 metadata round-trips");
    // Dequantize each tensor from the file and compare with the source values.
    FILE * f = fopen(path.c_str(), "rb");
    for (const auto & t : info.tensors) {
        std::vector<uint8_t> raw(t.size);
        fseek(f, (long) t.offset, SEEK_SET);
        ok &= check(fread(raw.data(), 1, raw.size(), f) == raw.size(), "tensor data readable");
        const ggml_type type = ibl_ggml_type_from_name(t.type);
        std::vector<float> back(w.size());
        if (type == GGML_TYPE_F32) memcpy(back.data(), raw.data(), raw.size());  // f32 has no to_float
        else ggml_get_type_traits(type)->to_float(raw.data(), back.data(), (int64_t) back.size());
        double max_err = 0;
        for (size_t i = 0; i < w.size(); ++i) max_err = std::fmax(max_err, std::fabs(back[i] - w[i]));
        const double tol = type == GGML_TYPE_F32 ? 0 : type == GGML_TYPE_F16 ? 1e-3 : 1e-2;
        char what[128];
        snprintf(what, sizeof(what), "%s values within %g (max err %.2g)", t.type.c_str(), tol, max_err);
        ok &= check(max_err <= tol, what);
    }
    fclose(f);
    // Bad input must be an error, not an abort.
    bool threw = false;
    try { ibl_gguf_inspect(dir + "/does-not-exist.gguf"); } catch (const ibl_error & e) { threw = e.code == "ERR_FILE_NOT_FOUND"; }
    ok &= check(threw, "missing file is ERR_FILE_NOT_FOUND");
    remove(path.c_str());
    printf("%d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
    return ok ? 0 : 1;
}

static void print_json_array(const std::vector<float> & v) {
    printf("[");
    for (size_t i = 0; i < v.size(); ++i) printf("%s%.9g", i ? "," : "", v[i]);
    printf("]\n");
}

static int cmd_encode(const std::string & gguf, const std::string & modality, const std::string & npy, const std::string & device) {
    ibl_model_params mp;
    mp.device = device;
    auto model = ibl_model_load(gguf, mp);
    const ibl_modality mod = ibl_modality_from_name(modality);
    if (mod == IBL_MOD_COUNT) ibl_throw("ERR_INVALID_ARG", "unknown modality '%s'", modality.c_str());
    const ibl_npy in = ibl_npy_load(npy);
    ibl_encoder_batch b;
    b.mod = mod;
    const int64_t item = ibl_encoder_item_size(*model, mod);
    if (mod == IBL_MOD_TEXT) for (int64_t v : in.to_i64()) b.ids.push_back((int32_t) v);
    else b.data = in.to_f32();
    if (mod == IBL_MOD_VISION && in.shape.size() == 4) {
        b.data = ibl_images_to_clips(b.data.data(), in.shape[0], in.shape[1], in.shape[2] * in.shape[3], model->vision.frames);
    }
    b.n = (int) ((mod == IBL_MOD_TEXT ? b.ids.size() : b.data.size()) / item);
    fprintf(stderr, "device %s, %d item(s)\n", model->device_name.c_str(), b.n);
    const auto t0 = std::chrono::steady_clock::now();
    const auto out = ibl_encode(*model, b);
    fprintf(stderr, "encode: %.1f ms\n", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    print_json_array(out);
    return 0;
}

struct llm_run {
    std::unique_ptr<ibl_mmllm>       m;
    std::unique_ptr<ibl_llm_session> s;
};

static llm_run llm_prepare(const std::vector<std::string> & a, bool trace = false) {
    // a: llm, bind, prompt-file, visual ("" or "-": none), device, gpu-layers
    ibl_llm_params lp;
    lp.device = a[4];
    lp.n_gpu_layers = a[5].empty() ? -1 : atoi(a[5].c_str());
    llm_run r;
    r.m = ibl_mmllm_load({a[0], a[1], ""}, lp);
    fprintf(stderr, "device %s, %d layer(s) offloaded\n", r.m->llm->device.c_str(), r.m->llm->n_gpu_layers);
    ibl_session_params sp;
    sp.trace_placement = trace;
    r.s = std::make_unique<ibl_llm_session>(*r.m->llm, sp);
    if (!a[3].empty() && a[3] != "-") r.s->set_injection(r.m->bind->injection(ibl_npy_load(a[3]).to_f32()));
    std::ifstream f(a[2]);
    std::stringstream ss;
    ss << f.rdbuf();
    const auto t0 = std::chrono::steady_clock::now();
    r.s->eval(ibl_llm_tokenize(*r.m->llm, ss.str(), true));
    fprintf(stderr, "prompt: %.1f ms\n", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    return r;
}

static int cmd_logits(const std::vector<std::string> & a) {
    print_json_array(llm_prepare(a).s->last_logits());
    return 0;
}

static int cmd_greedy(const std::vector<std::string> & a, int n) {
    llm_run r = llm_prepare(a);
    ibl_generate_params gp;
    gp.max_tokens = n;
    gp.sampling.temperature = 0.0f;
    const auto t0 = std::chrono::steady_clock::now();
    const ibl_generate_result g = r.s->generate(gp, [](const std::string &, llama_token) { return true; });
    fprintf(stderr, "%zu token(s): %.1f ms\n", g.tokens.size(), std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    printf("[");
    for (size_t i = 0; i < g.tokens.size(); ++i) printf("%s%d", i ? "," : "", g.tokens[i]);
    printf("]\n");
    return 0;
}

static int cmd_placement(const std::vector<std::string> & a) {
    llm_run r = llm_prepare(a, true);
    printf("[");
    const auto & p = r.s->injection_placement();
    for (size_t i = 0; i < p.size(); ++i) {
        printf("%s{\"layer\":%d,\"injectionBuffer\":\"%s\",\"injectionHost\":%s,\"injectionCopied\":%s,\"weightBuffer\":\"%s\",\"weightHost\":%s}",
               i ? "," : "", p[i].layer, p[i].injection_buffer.c_str(), p[i].injection_host ? "true" : "false",
               p[i].injection_copied ? "true" : "false", p[i].weight_buffer.c_str(), p[i].weight_host ? "true" : "false");
    }
    printf("]\n");
    return 0;
}

// cb_eval is asked once per node before it is computed; answering false keeps the graph in one compute.
static bool record_node(ggml_tensor * t, bool ask, void * user) {
    if (ask) {
        char ne[96];
        snprintf(ne, sizeof(ne), " [%lld, %lld, %lld, %lld]", (long long) t->ne[0], (long long) t->ne[1], (long long) t->ne[2], (long long) t->ne[3]);
        static_cast<std::vector<std::string> *>(user)->push_back(std::string(ggml_op_desc(t)) + " " + t->name + ne);
    }
    return false;
}

// The nodes of one decode of n_tokens tokens in a fresh context, with `injection` set when not null.
static std::vector<std::string> decode_nodes(const ibl_llm & llm, const std::vector<float> * injection, int n_tokens) {
    std::vector<std::string> nodes;
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = cp.n_batch = cp.n_ubatch = 64;
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = 2;
    cp.cb_eval = record_node;
    cp.cb_eval_user_data = &nodes;
    cp.no_perf = true;
    llama_context * ctx = llama_init_from_model(llm.model, cp);
    if (!ctx) ibl_throw("ERR_OUT_OF_MEMORY", "%s: cannot create a context", llm.path.c_str());
    std::vector<llama_token> ids(n_tokens);
    for (int i = 0; i < n_tokens; ++i) ids[i] = 1 + i % (llm.n_vocab - 1);
    int rc = injection ? llama_set_layer_injection(ctx, injection->data(), llm.n_embd, llm.n_layer) : 0;
    if (rc == 0) rc = llama_decode(ctx, llama_batch_get_one(ids.data(), n_tokens));
    llama_free(ctx);
    if (rc != 0) ibl_throw("ERR_DECODE", "%s: decode failed (%d)", llm.path.c_str(), rc);
    return nodes;
}

static int cmd_graph(const std::string & llm_path, const std::string & device) {
    ibl_llm_params lp;
    lp.device = device;
    lp.n_gpu_layers = 999;
    auto llm = ibl_llm_load(llm_path, lp);
    std::vector<float> d((size_t) llm->n_layer * llm->n_embd);
    for (size_t i = 0; i < d.size(); ++i) d[i] = 0.01f * std::sin(0.1f * (float) i);
    printf("{\"n_layer\": %d", llm->n_layer);
    for (const char * kind : {"plain", "injected"}) {
        printf(", \"%s\": {", kind);
        for (int n : {1, 7}) {
            printf("%s\"%d\": [", n == 1 ? "" : ", ", n);
            const auto nodes = decode_nodes(*llm, strcmp(kind, "plain") == 0 ? nullptr : &d, n);
            for (size_t i = 0; i < nodes.size(); ++i) printf("%s\"%s\"", i ? ", " : "", nodes[i].c_str());
            printf("]");
        }
        printf("}");
    }
    printf("}\n");
    return 0;
}

int main(int argc, char ** argv) {
    ibl_log_init();
    const std::string cmd = argc > 1 ? argv[1] : "";
    try {
        if (cmd == "info") return cmd_info();
        if (cmd == "inspect" && argc > 2) return cmd_inspect(argv[2]);
        if (cmd == "selftest" && argc > 2) return cmd_selftest(argv[2]);
        if (cmd == "encode" && argc > 4) return cmd_encode(argv[2], argv[3], argv[4], argc > 5 ? argv[5] : "auto");
        if (cmd == "matmul") return ibl_cmd_matmul(argc, argv);
        if (cmd == "profile") return ibl_cmd_profile(argc, argv);
        auto args = [&](int from, int n) {  // argv[from..from+n), "" where absent
            std::vector<std::string> v;
            for (int i = from; i < from + n; ++i) v.push_back(i < argc ? argv[i] : "");
            if (v[4].empty()) v[4] = "auto";
            return v;
        };
        if (cmd == "logits" && argc > 4) return cmd_logits(args(2, 6));
        if (cmd == "placement" && argc > 5) return cmd_placement(args(2, 6));
        if (cmd == "greedy" && argc > 6) {
            std::vector<std::string> v = {argv[2], argv[3], argv[4], argv[5], argc > 7 ? argv[7] : "auto", argc > 8 ? argv[8] : ""};
            return cmd_greedy(v, atoi(argv[6]));
        }
        if (cmd == "graph" && argc > 2) return cmd_graph(argv[2], argc > 3 ? argv[3] : "auto");
    } catch (const ibl_error & e) {
        fprintf(stderr, "error [%s]: %s\n", e.code.c_str(), e.what());
        return 1;
    }
    fprintf(stderr, "usage: ibl-driver info | inspect <file.gguf> | selftest <dir> | encode <encoder.gguf> <modality> <input.npy> [device]\n"
                    "       | logits <llm.gguf> <bind.gguf> <prompt-file> [visual.npy|-] [device] [gpu-layers]\n"
                    "       | greedy <llm.gguf> <bind.gguf> <prompt-file> <visual.npy|-> <n> [device] [gpu-layers]\n"
                    "       | placement <llm.gguf> <bind.gguf> <prompt-file> <visual.npy> [device] [gpu-layers]\n"
                    "       | graph <llm.gguf> [device]\n"
                    "       | matmul <M> <N> <K> <threads> [type] [reps] | profile <encoder.gguf> <modality> <threads> [batch] [reps] [no-flash]\n");
    return 2;
}
