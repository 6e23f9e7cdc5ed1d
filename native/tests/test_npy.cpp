#include "ibl_test.h"

void test_npy(ibl_test & t) {
    const ibl_npy a = ibl_npy_load(t.tiny("inputs/vision_dog_image.npy"));
    t.check(a.dtype == "f4" && a.shape == std::vector<int64_t>({1, 3, 224, 224}), "npy: f32 (1,3,224,224) header");
    const ibl_npy ids = ibl_npy_load(t.tiny("inputs/text.npy"));
    t.check(ids.dtype == "i8" && ids.shape.size() == 2 && ids.shape[1] == 77, "npy: int64 token ids");
    const auto v = ids.to_i64();
    t.check(!v.empty() && v[0] == 49406, "npy: first token is <|startoftext|>");
    t.check_throws([&] { ibl_npy_load(t.asset("bird_image.png")); }, "ERR_NPY_INVALID", "bird_image.png", "npy: a PNG is not a .npy");
    t.check_throws([&] { ibl_npy_load(t.asset("nope.npy")); }, "ERR_FILE_NOT_FOUND", "nope.npy", "npy: missing file");
    std::vector<uint8_t> bytes = ibl_read_file(t.tiny("inputs/imu_walk.npy"));
    bytes.resize(bytes.size() - 7);
    t.check_throws([&] { ibl_npy_parse(bytes.data(), bytes.size(), "<cut>"); }, "ERR_NPY_INVALID", "truncated", "npy: truncated data");
}
