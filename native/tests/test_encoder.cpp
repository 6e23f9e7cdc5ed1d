// Encoders fed the fixtures' preprocessed input tensors, against the expected head outputs and
// embeddings (fixtures README §5). The model is the fixture checkpoint converted to GGUF; its path comes
// from IBL_ENCODER_GGUF (the ava test converts it with our converter at every precision we ship), the
// device from IBL_ENCODER_DEVICE.
#include "ibl_test.h"
#include "encoder/ibl_encoder.h"

#include "nlohmann/json.hpp"

#include <cstdlib>
#include <fstream>

using json = nlohmann::json;

static std::vector<float> load_f32(const std::string & p) { return ibl_npy_load(p).to_f32(); }

void test_encoder(ibl_test & t) {
    const char * gguf = getenv("IBL_ENCODER_GGUF");
    if (!t.check(gguf != nullptr, "IBL_ENCODER_GGUF names the converted fixture encoder")) return;
    const double cos_min = getenv("IBL_ENCODER_COS") ? atof(getenv("IBL_ENCODER_COS")) : 0.99999;
    const double rel = getenv("IBL_ENCODER_REL") ? atof(getenv("IBL_ENCODER_REL")) : 1e-4;
    ibl_model_params mp;
    mp.n_threads = 2;
    // IBL_ENCODER_DEVICE: run the same checks on another device (test/devices.test.mjs); default the CPU.
    mp.device = getenv("IBL_ENCODER_DEVICE") ? getenv("IBL_ENCODER_DEVICE") : "cpu";
    auto model = ibl_model_load(gguf, mp);
    printf("device %s\n", model->device_name.c_str());

    std::ifstream mf(t.tiny("manifest.json"));
    const json manifest = json::parse(mf);
    for (const auto & c : manifest["imagebind_cases"]) {
        const std::string name = c["name"], modname = c["modality"];
        const ibl_modality mod = ibl_modality_from_name(modname);
        ibl_encoder_batch batch;
        batch.mod = mod;
        const ibl_npy in = ibl_npy_load(t.tiny(c["input"]));
        int n_inputs = (int) in.shape[0], n_clips = 1;
        if (mod == IBL_MOD_TEXT) {
            for (int64_t v : in.to_i64()) batch.ids.push_back((int32_t) v);
            batch.n = n_inputs;
        } else if (mod == IBL_MOD_POINT) {
            // Grouping is checked on its own (test_points); here the reference grouping is used.
            const auto pts = in.to_f32();
            const auto centers = load_f32(t.tiny("expected/point_airplane.centers.npy"));
            const auto knn = ibl_npy_load(t.tiny("expected/point_airplane.knn_idx.npy"));
            const auto idx = knn.to_i64();
            const int64_t G = knn.shape[0], K = knn.shape[1];
            for (int64_t g = 0; g < G; ++g)
                for (int64_t k = 0; k < K; ++k)
                    for (int d = 0; d < 3; ++d) batch.data.push_back(pts[idx[g * K + k] * 3 + d] - centers[g * 3 + d]);
            batch.centers = centers;
            batch.n = 1;
        } else {
            batch.data = in.to_f32();
            const size_t dims = in.shape.size();
            if (c.contains("input_tiling")) {
                // video_short_1p2s: one clip stored, tiled 5× along axis 1 (all five clips are identical).
                const int reps = c["input_tiling"]["repeats"];
                std::vector<float> tiled;
                for (int r = 0; r < reps; ++r) tiled.insert(tiled.end(), batch.data.begin(), batch.data.end());
                batch.data = tiled;
                n_clips = (int) in.shape[1] * reps;
            } else if (dims >= 5) {
                n_clips = (int) in.shape[1];  // (B, clips, ...)
            }
            if (mod == IBL_MOD_VISION && dims == 4) {
                batch.data = ibl_images_to_clips(batch.data.data(), in.shape[0], in.shape[1], in.shape[2] * in.shape[3], model->vision.frames);
            }
            batch.n = n_inputs * n_clips;
        }
        const std::vector<float> raw = ibl_encode(*model, batch);
        std::vector<float> prenorm, emb, all_prenorm, all_emb;
        for (int i = 0; i < n_inputs; ++i) {
            ibl_postprocess(*model, mod, raw.data() + (size_t) i * n_clips * model->out_dim, n_clips, model->out_dim, prenorm, emb);
            all_prenorm.insert(all_prenorm.end(), prenorm.begin(), prenorm.end());
            all_emb.insert(all_emb.end(), emb.begin(), emb.end());
        }
        t.check_close(all_prenorm, load_f32(t.tiny(c["expected_prenorm"])), name + ": head output", rel, cos_min);
        t.check_close(all_emb, load_f32(t.tiny(c["expected"])), name + ": embedding", rel, cos_min);
    }
}
