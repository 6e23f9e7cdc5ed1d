// Image, video-frame, depth and thermal pixel preprocessing for the ImageBind encoders.
//
// Mirrors the upstream Python pipeline number for number (fixtures README 4.1, 4.2, 4.5):
//   image:   PIL decode -> RGB -> Pillow bicubic resize (short side S) -> centre crop -> /255 -> normalise
//   video:   RGB frames -> /255 -> torch bilinear resize (no antialias) -> normalise -> 3 spatial crops
//   depth:   16-bit PNG / 1000 (metres);  thermal: 8-bit PNG / 255
// Sizes (S) and mean/std are parameters: they come from the GGUF, not from this file.
// Every failure on user data throws ibl_error (ERR_IMAGE_DECODE, ERR_IMAGE_TOO_LARGE, ERR_INVALID_ARG).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

// Largest image we agree to decode (checked on the header, before any pixel buffer is allocated).
constexpr int     IBL_IMAGE_MAX_SIDE   = 16384;
constexpr int64_t IBL_IMAGE_MAX_PIXELS = 100000000;

// 8-bit interleaved pixels, row-major: data[(y * w + x) * c + ch]. c = 3 (RGB) or 1 (gray).
struct ibl_image_u8 {
    int w = 0, h = 0, c = 0;
    std::vector<uint8_t> data;
};

// 16-bit single-channel pixels (depth maps), row-major.
struct ibl_image_u16 {
    int w = 0, h = 0;
    int bits = 16;  // bit depth of the source: 8-bit sources are widened without rescaling
    std::vector<uint16_t> data;
};

// Per-channel normalisation (x - mean) / std applied after x / 255.
struct ibl_image_norm {
    float mean[3];
    float std[3];
};

// ---- decoding (JPEG, PNG, BMP, GIF (first frame), TGA, PSD, PNM, ... via stb_image, from memory) ----
// `what` names the source in error messages (a path or "<buffer>").
// RGB like PIL's convert("RGB"): gray is replicated, alpha is dropped (not composited), palettes expanded.
ibl_image_u8  ibl_image_decode(const uint8_t * data, size_t size, const std::string & what);
// 8-bit gray like PIL's convert("L") (colour -> ITU-R 601-2 luma, alpha dropped). For thermal images.
ibl_image_u8  ibl_image_decode_gray8(const uint8_t * data, size_t size, const std::string & what);
// Raw 16-bit gray sample values (PNG 16-bit depth maps). For depth images.
ibl_image_u16 ibl_image_decode_gray16(const uint8_t * data, size_t size, const std::string & what);

// ---- geometry ----
// Vision (torchvision Resize(S) + CenterCrop(S)): short side -> S, long side floor(S * long / short);
// crop offsets round((resized - S) / 2) with half to even.
struct ibl_image_geometry {
    int resized_w = 0, resized_h = 0;
    int crop_left = 0, crop_top = 0;
};
ibl_image_geometry ibl_image_geometry_for(int w, int h, int S);

// Video (pytorchvideo ShortSideScale(S) + ImageBind SpatialCrop(S, 3)): long side floor(long / short * S);
// three crops at 0, ceil((L - S) / 2), L - S along the long side, the other axis centred with ceil.
struct ibl_video_geometry {
    int scaled_w = 0, scaled_h = 0;
    int crop_y[3] = {0, 0, 0};
    int crop_x[3] = {0, 0, 0};
};
ibl_video_geometry ibl_video_geometry_for(int w, int h, int S);

// ---- building blocks ----
// Pillow Image.resize(size, Image.BICUBIC) of an 8-bit image (any c), bit-exact.
ibl_image_u8 ibl_image_resize_bicubic(const ibl_image_u8 & src, int out_w, int out_h);
ibl_image_u8 ibl_image_crop(const ibl_image_u8 & src, int left, int top, int w, int h);
// Short side -> S with Pillow bicubic, then centre crop S x S: the uint8 image the encoder sees.
ibl_image_u8 ibl_image_resize_crop(const ibl_image_u8 & rgb, int S);
// uint8 RGB (h, w, 3) -> float (3, h, w): x / 255, then (x - mean) / std per channel.
std::vector<float> ibl_image_normalize(const ibl_image_u8 & rgb, const ibl_image_norm & norm);

// ---- encoder inputs ----
// Vision: decoded RGB -> float (3, S, S) CHW.
std::vector<float> ibl_image_preprocess(const ibl_image_u8 & rgb, int S, const ibl_image_norm & norm);
// Depth: raw 16-bit values / 1000 (millimetres -> metres) -> float (1, S, S).
std::vector<float> ibl_depth_preprocess(const ibl_image_u16 & depth, int S);
// Thermal: 8-bit gray / 255 -> float (1, S, S).
std::vector<float> ibl_thermal_preprocess(const ibl_image_u8 & gray, int S);
// Video: the T selected RGB frames of one clip (all the same size) ->
// float (3 crops, 3 channels, T frames, S, S), crop-major: one clip's slice of the (1, clips*3, 3, T, S, S) input.
std::vector<float> ibl_video_clip_preprocess(const std::vector<ibl_image_u8> & frames, int S, const ibl_image_norm & norm);
