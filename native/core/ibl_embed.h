// From user inputs (files, buffers, decoded media, text) to ImageBind embeddings: per-modality
// preprocessing, batching of same-modality inputs into one graph, post-processing.
#pragma once

#include "encoder/ibl_encoder.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

// One decoded RGB24 frame (video).
struct ibl_rgb_frame {
    int width = 0, height = 0;
    std::vector<uint8_t> rgb;  // H × W × 3
};

enum ibl_text_truncation {
    IBL_TRUNCATE_IMAGEBIND,      // original ImageBind: keep 76 tokens and re-append the end token (default)
    IBL_TRUNCATE_IMAGEBIND_LLM,  // ImageBind-LLM's copy: cut at the context length (the end token may be lost)
};

struct ibl_input {
    ibl_modality mod = IBL_MOD_VISION;
    std::string  what = "<buffer>";  // file name for messages; its extension hints the format
    std::string  format;             // explicit format ("npy", "png", "ply", ...) or empty
    // Exactly one of these carries the data:
    std::vector<uint8_t> bytes;                      // an encoded file (image, PNG, .npy, point cloud)
    std::string          text;                       // text
    std::vector<std::vector<float>> channels;        // decoded audio, all channels, at `sample_rate`
    int                  sample_rate = 0;
    std::vector<std::vector<ibl_rgb_frame>> clips;   // decoded video: the selected frames of each clip
    std::vector<float>   tensor;                     // an already preprocessed input tensor
    std::vector<int64_t> tensor_shape;
    bool                 is_tensor = false;
};

struct ibl_embed_options {
    ibl_text_truncation truncation = IBL_TRUNCATE_IMAGEBIND;
    int                 max_batch  = 16;  // items per graph
};

struct ibl_embedding {
    ibl_modality       mod;
    int                n_clips = 1;
    std::vector<float> raw;     // head output, averaged over clips ("prenorm")
    std::vector<float> scaled;  // post-processed: per clip L2-normalised × logit scale, averaged over clips
    std::vector<float> unit;    // `scaled` normalised to unit length: what users compare
};

// Preprocessed model input of one input: n_clips items of the modality's encoder.
struct ibl_prepared {
    int                  n_clips = 1;
    std::vector<float>   data;
    std::vector<int32_t> ids;
    std::vector<float>   centers;
};

ibl_prepared ibl_prepare(const ibl_model & model, const ibl_input & in, const ibl_embed_options & opt);

// progress(done, total) counts encoder items (clips); called from the calling thread.
std::vector<ibl_embedding> ibl_embed(ibl_model & model, const std::vector<ibl_input> & inputs, const ibl_embed_options & opt,
                                     const std::atomic<bool> * abort_flag = nullptr,
                                     const std::function<void(int, int)> & progress = nullptr);
