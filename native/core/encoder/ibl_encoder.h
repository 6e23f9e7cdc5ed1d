// Running ImageBind encoders: one graph per (modality, batch), host-side patch extraction for the conv
// stems, and the post-processing (L2 normalise, logit scale, clip averaging).
#pragma once

#include "ibl_model.h"

#include <atomic>
#include <cstdint>
#include <vector>

// Preprocessed inputs for n items of one modality (the model's own input tensors, fixtures §4):
//   vision  n × [3, frames, S, S]   (an image is its frame repeated; video: one item per clip×crop)
//   audio   n × [1, mel_bins, target_len]   (one item per clip)
//   depth / thermal  n × [1, S, S]
//   imu     n × [channels, length]
//   text    ids: n × [context_len]
//   point   neighbourhoods n × [num_group, group_size, 3] and centres n × [num_group, 3]
struct ibl_encoder_batch {
    ibl_modality         mod = IBL_MOD_VISION;
    int                  n   = 0;
    std::vector<float>   data;
    std::vector<int32_t> ids;
    std::vector<float>   centers;
};

// Raw head outputs, n × out_dim (before L2 normalisation and logit scale: the fixtures' "prenorm").
// `abort_flag` (optional) stops a running CPU graph; the call then throws ERR_ABORTED.
std::vector<float> ibl_encode(ibl_model & model, const ibl_encoder_batch & batch, const std::atomic<bool> * abort_flag = nullptr);

// The expected element count of one item's input for `mod` (validation before anything reaches ggml).
int64_t ibl_encoder_item_size(const ibl_model & model, ibl_modality mod);

// At load: every patch-stem modality's input geometry (image size, spectrogram, IMU length, kernel,
// stride) gives exactly the model's token count; else ERR_MODEL_INVALID (before any input is read).
void ibl_encoder_check_geometry(const ibl_model & model);

// Post-processing of one input made of `n_clips` items (fixtures §5): each clip's raw output is L2
// normalised (eps 1e-12) and multiplied by the logit scale, then clips are averaged.
// `raw_mean` gets the clip average of the raw outputs, `embedding` the averaged post-processed vector.
void ibl_postprocess(const ibl_model & model, ibl_modality mod, const float * raw, int n_clips, int out_dim,
                     std::vector<float> & raw_mean, std::vector<float> & embedding);

// Images [n, C, H·W] → clips [n, C, frames, H·W]: upstream feeds a single image to the video stem as
// its frame repeated.
std::vector<float> ibl_images_to_clips(const float * x, int64_t n, int64_t C, int64_t hw, int frames);

// Im2col for conv stems whose stride ≤ kernel: input [C, T, H, W] → patches [P][C·kt·kh·kw] with the
// PyTorch weight flattening order (c, dt, dy, dx) and patches row-major over the output grid.
std::vector<float> ibl_patchify(const float * x, int C, int T, int H, int W, const std::vector<int> & kernel,
                                const std::vector<int> & stride, int64_t * n_patches);
