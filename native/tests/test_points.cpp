// Point cloud readers and the Point-Bind grouping (FPS + kNN) against the fixtures
// (fixtures/README.md 4.6 and section 5 "Point-Bind trunk" steps 1-2).
#include "ibl_test.h"
#include "ibl_points.h"

#include "nlohmann/json.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

namespace fs = std::filesystem;

static bool same_bits(const std::vector<float> & a, const std::vector<float> & b) {
    return a.size() == b.size() && (a.empty() || memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

static void write_file(const fs::path & path, const std::string & bytes) {
    std::ofstream f(path, std::ios::binary);
    f.write(bytes.data(), (std::streamsize) bytes.size());
}

// %.9g round-trips float32 exactly.
static std::string f9(float v) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%.9g", v);
    return buf;
}

template <typename T>
static void put(std::string & out, T v, bool big_endian) {
    char b[sizeof(T)];
    memcpy(b, &v, sizeof(T));
    if (big_endian) std::reverse(b, b + sizeof(T));  // the test host is little endian, like the fixtures
    out.append(b, sizeof(T));
}

// Binary little-endian PLY: vertex (float x, uchar red, float y, double z, list uchar int extra), then faces.
static std::string ply_binary_le(const std::vector<float> & xyz) {
    const size_t n = xyz.size() / 3;
    std::string s = "ply\nformat binary_little_endian 1.0\ncomment written by test_points\nelement vertex " + std::to_string(n) +
                    "\nproperty float x\nproperty uchar red\nproperty float y\nproperty double z\nproperty list uchar int extra\n"
                    "element face 2\nproperty list uchar int vertex_indices\nend_header\n";
    for (size_t i = 0; i < n; ++i) {
        put<float>(s, xyz[3 * i], false);
        put<uint8_t>(s, (uint8_t) (i * 7), false);
        put<float>(s, xyz[3 * i + 1], false);
        put<double>(s, xyz[3 * i + 2], false);
        put<uint8_t>(s, (uint8_t) (i % 3), false);
        for (size_t k = 0; k < i % 3; ++k) put<int32_t>(s, (int32_t) k, false);
    }
    for (int f = 0; f < 2; ++f) {
        put<uint8_t>(s, 3, false);
        for (int k = 0; k < 3; ++k) put<int32_t>(s, f + k, false);
    }
    return s;
}

// Binary big-endian PLY with a face element *before* the vertices (variable-length lists to skip).
static std::string ply_binary_be(const std::vector<float> & xyz) {
    const size_t n = xyz.size() / 3;
    std::string s = "ply\r\nformat binary_big_endian 1.0\r\nelement face 3\r\nproperty list uchar uint vertex_indices\r\nproperty short flag\r\n"
                    "element vertex " + std::to_string(n) + "\r\nproperty float32 x\r\nproperty float32 y\r\nproperty float32 z\r\n"
                    "property uint16 intensity\r\nend_header\r\n";
    for (int f = 0; f < 3; ++f) {
        put<uint8_t>(s, (uint8_t) (3 + f), true);
        for (int k = 0; k < 3 + f; ++k) put<uint32_t>(s, (uint32_t) k, true);
        put<int16_t>(s, (int16_t) -f, true);
    }
    for (size_t i = 0; i < n; ++i) {
        for (int c = 0; c < 3; ++c) put<float>(s, xyz[3 * i + c], true);
        put<uint16_t>(s, (uint16_t) i, true);
    }
    return s;
}

static std::string obj_text(const std::vector<float> & xyz) {
    std::string s = "# exported by test_points\nmtllib plane.mtl\no plane\n";
    for (size_t i = 0; i < xyz.size() / 3; ++i) {
        s += "v " + f9(xyz[3 * i]) + " " + f9(xyz[3 * i + 1]) + " " + f9(xyz[3 * i + 2]) + (i % 2 ? " 1.0\n" : "\n");
        if (i % 100 == 0) s += "vn 0 0 1\nvt 0.5 0.5\n";
    }
    s += "f 1 2 3\nf 2 3 4\n";
    return s;
}

static std::string pcd_ascii(const std::vector<float> & xyz) {
    const std::string n = std::to_string(xyz.size() / 3);
    std::string s = "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS x y z rgb\nSIZE 4 4 4 4\nTYPE F F F U\nCOUNT 1 1 1 1\n"
                    "WIDTH " + n + "\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS " + n + "\nDATA ascii\n";
    for (size_t i = 0; i < xyz.size() / 3; ++i) s += f9(xyz[3 * i]) + " " + f9(xyz[3 * i + 1]) + " " + f9(xyz[3 * i + 2]) + " 4278190080\n";
    return s;
}

// Binary PCD: an intensity field before x y z, a 2-value normal field after.
static std::string pcd_binary(const std::vector<float> & xyz) {
    const std::string n = std::to_string(xyz.size() / 3);
    std::string s = "VERSION .7\nFIELDS intensity x y z normal\nSIZE 2 4 4 4 4\nTYPE U F F F F\nCOUNT 1 1 1 1 2\nWIDTH " + n +
                    "\nHEIGHT 1\nPOINTS " + n + "\nDATA binary\n";
    for (size_t i = 0; i < xyz.size() / 3; ++i) {
        put<uint16_t>(s, (uint16_t) i, false);
        for (int c = 0; c < 3; ++c) put<float>(s, xyz[3 * i + c], false);
        put<float>(s, 0.f, false);
        put<float>(s, 1.f, false);
    }
    return s;
}

static std::string pts_text(const std::vector<float> & xyz) {
    std::string s = std::to_string(xyz.size() / 3) + "\n";
    for (size_t i = 0; i < xyz.size() / 3; ++i) s += f9(xyz[3 * i]) + " " + f9(xyz[3 * i + 1]) + " " + f9(xyz[3 * i + 2]) + " 17 200 200 200\n";
    return s;
}

// ModelNet-style "x,y,z,nx,ny,nz" with a column header line.
static std::string csv_text(const std::vector<float> & xyz) {
    std::string s = "x,y,z,nx,ny,nz\r\n";
    for (size_t i = 0; i < xyz.size() / 3; ++i) s += f9(xyz[3 * i]) + "," + f9(xyz[3 * i + 1]) + "," + f9(xyz[3 * i + 2]) + ",0,0,1\r\n";
    return s;
}

static void test_points_readers(ibl_test & t, const fs::path & dir) {
    const std::vector<float> ref = ibl_npy_load(t.asset("airplane.npy")).to_f32();
    const ibl_point_cloud npy = ibl_points_load(t.asset("airplane.npy"));
    const ibl_point_cloud ply = ibl_points_load(t.asset("airplane.ply"));
    const ibl_point_cloud xyz = ibl_points_load(t.asset("airplane.xyz"));
    t.check(npy.n == 8192 && same_bits(npy.xyz, ref), "points: airplane.npy (8192, 3) equals the npy array");
    t.check(ply.n == 8192 && same_bits(ply.xyz, ref), "points: airplane.ply (ASCII) is bit-identical to the npy");
    t.check(xyz.n == 8192 && same_bits(xyz.xyz, ref), "points: airplane.xyz is bit-identical to the npy");
    const ibl_point_cloud car_ply = ibl_points_load(t.asset("car.ply")), car_xyz = ibl_points_load(t.asset("car.xyz"));
    t.check(same_bits(car_ply.xyz, ibl_npy_load(t.asset("car.npy")).to_f32()) && same_bits(car_xyz.xyz, car_ply.xyz),
            "points: car .ply/.xyz are bit-identical to car.npy");
    const ibl_point_cloud in = ibl_points_load(t.tiny("inputs/point_airplane.npy"));
    t.check(same_bits(in.xyz, ref), "points: the (1, N, 3) model input reads as the same points");

    const std::vector<float> & p = ref;
    struct rt { const char * file; std::string bytes; };
    const rt cases[] = {
        {"airplane_le.ply", ply_binary_le(p)}, {"airplane_be.ply", ply_binary_be(p)}, {"airplane.obj", obj_text(p)},
        {"airplane.pcd", pcd_ascii(p)},        {"airplane_bin.pcd", pcd_binary(p)},  {"airplane.pts", pts_text(p)},
        {"airplane.txt", csv_text(p)},
    };
    for (const rt & c : cases) {
        const fs::path path = dir / c.file;
        write_file(path, c.bytes);
        try {
            const ibl_point_cloud r = ibl_points_load(path.string());
            t.check(r.n == 8192 && same_bits(r.xyz, ref), std::string("points: round trip through ") + c.file);
        } catch (const std::exception & e) {
            t.check(false, std::string("points: round trip through ") + c.file + ": " + e.what());
        }
    }
    // Detection from content when the name says nothing.
    for (const rt & c : cases) {
        const std::string what = std::string("points: format of ") + c.file + " detected from its content";
        try {
            const ibl_point_cloud r = ibl_points_parse((const uint8_t *) c.bytes.data(), c.bytes.size(), "<buffer>");
            t.check(same_bits(r.xyz, ref), what);
        } catch (const std::exception & e) {
            t.check(false, what + ": " + e.what());
        }
    }
    {
        const std::vector<uint8_t> b = ibl_read_file(t.asset("airplane.xyz"));
        const ibl_point_cloud r = ibl_points_parse(b.data(), b.size(), "upload.bin", "xyz");
        t.check(same_bits(r.xyz, ref), "points: explicit format overrides the extension");
    }
    {
        // float64 (1, 2, 4): batch dimension, an extra column, values rounded to float32.
        std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2, 4), }";
        dict += std::string(128 - 10 - dict.size() - 1, ' ') + "\n";
        std::string npy = std::string("\x93NUMPY\x01\x00", 8);
        put<uint16_t>(npy, (uint16_t) dict.size(), false);
        npy += dict;
        for (double v : {0.1, -2.0, 3.0, 9.0, 1e-3, 5.5, -6.25, 9.0}) put<double>(npy, v, false);
        const ibl_point_cloud r = ibl_points_parse((const uint8_t *) npy.data(), npy.size(), "f8.npy");
        t.check(r.n == 2 && r.xyz == std::vector<float>({0.1f, -2.0f, 3.0f, 1e-3f, 5.5f, -6.25f}), "points: float64 (1, N, 4) .npy");
    }
    {
        const std::string s = "ply\nformat ascii 1.0\nelement vertex 2\nproperty short x\nproperty uchar y\nproperty int z\n"
                              "property list uchar float w\nend_header\n1 2 -3 2 0.5 0.25\n-4 255 6 0\n";
        const ibl_point_cloud r = ibl_points_parse((const uint8_t *) s.data(), s.size(), "ints.ply");
        t.check(r.xyz == std::vector<float>({1, 2, -3, -4, 255, 6}), "points: ASCII PLY with integer types and a list property");
    }
}

static void test_points_errors(ibl_test & t, const fs::path & dir) {
    auto parse = [](const std::string & s, const std::string & what) {
        return ibl_points_parse((const uint8_t *) s.data(), s.size(), what);
    };
    const std::vector<float> ten(30, 0.5f);
    t.check_throws([&] { ibl_points_group(ten.data(), 10, 64, 28); }, "ERR_POINTS_TOO_FEW", "10 points", "points: 10 points, num_group 64");
    t.check_throws([&] { ibl_points_group(ten.data(), 10, 4, 32); }, "ERR_POINTS_TOO_FEW", "at least 32", "points: fewer points than group_size");
    t.check_throws([&] { ibl_points_group(ten.data(), 10, 0, 4); }, "ERR_INVALID_ARGUMENT", "num_group", "points: num_group 0");

    write_file(dir / "empty.xyz", "");
    t.check_throws([&] { ibl_points_load((dir / "empty.xyz").string()); }, "ERR_POINTS_EMPTY", "empty.xyz", "points: empty file");
    t.check_throws([&] { parse("# only a comment\n\n", "c.xyz"); }, "ERR_POINTS_EMPTY", "c.xyz", "points: file without points");
    t.check_throws([&] { parse("ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float y\nproperty float z\nend_header\n", "z.ply"); },
                   "ERR_POINTS_EMPTY", "0 vertices", "points: PLY with 0 vertices");

    const std::string huge_hdr = "ply\nformat binary_little_endian 1.0\nelement vertex 1000000000000\nproperty float x\nproperty float y\n"
                                 "property float z\nend_header\n";
    t.check_throws([&] { parse(huge_hdr + std::string(24, '\0'), "huge.ply"); }, "ERR_POINTS_MALFORMED", "1000000000000",
                   "points: binary PLY header claiming 10^12 vertices");
    std::string huge_ascii = huge_hdr;
    huge_ascii.replace(huge_ascii.find("binary_little_endian"), 20, "ascii");
    t.check_throws([&] { parse(huge_ascii + "1 2 3\n", "huge.ply"); }, "ERR_POINTS_MALFORMED", "1000000000000",
                   "points: ASCII PLY header claiming 10^12 vertices");
    t.check_throws([&] { parse("# .PCD v0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nPOINTS 99999999999\nDATA binary\n" + std::string(12, '\0'), "huge.pcd"); },
                   "ERR_POINTS_MALFORMED", "99999999999", "points: PCD header claiming 10^11 points");

    std::vector<float> some(300);
    for (size_t i = 0; i < some.size(); ++i) some[i] = (float) i * 0.01f;
    const std::string le = ply_binary_le(some);
    const size_t body = le.find("end_header\n") + 11;
    // Vertex records are 18 bytes + 4 per list item: 100·18 + 10 passes the size pre-check, then runs out.
    t.check_throws([&] { parse(le.substr(0, body + 100 * 18 + 10), "cut.ply"); }, "ERR_POINTS_MALFORMED", "truncated",
                   "points: binary PLY truncated inside the vertices");
    t.check_throws([&] { parse(le.substr(0, body + 500), "cut.ply"); }, "ERR_POINTS_MALFORMED", "truncated", "points: binary PLY truncated early");
    const std::string pcdb = pcd_binary(some);
    t.check_throws([&] { parse(pcdb.substr(0, pcdb.size() - 3), "cut.pcd"); }, "ERR_POINTS_MALFORMED", "truncated", "points: truncated binary PCD");
    t.check_throws([&] { parse("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nend_header\n1 2 3\n4 5 6\n", "a.ply"); },
                   "ERR_POINTS_MALFORMED", "truncated", "points: ASCII PLY with fewer lines than vertices");

    t.check_throws([&] { parse("1 2 3\nnan 0 0\n", "n.xyz"); }, "ERR_POINTS_INVALID", "line 2", "points: NaN in .xyz");
    t.check_throws([&] { parse("1 2 3\n0 inf 0\n", "n.xyz"); }, "ERR_POINTS_INVALID", "line 2", "points: Inf in .xyz");
    t.check_throws([&] { parse("1 2 3\n0 1e39 0\n", "n.xyz"); }, "ERR_POINTS_INVALID", "line 2", "points: value beyond float32 range");
    std::vector<float> bad(some);
    bad[7] = NAN;
    t.check_throws([&] { ibl_points_group(bad.data(), 100, 8, 8); }, "ERR_POINTS_INVALID", "point 2", "points: NaN passed to grouping");

    t.check_throws([&] { parse("1 2 3\n4 5\n", "m.xyz"); }, "ERR_POINTS_MALFORMED", "line 2", "points: .xyz line with two values");
    t.check_throws([&] { parse("1 2 3\n4 five 6\n", "m.xyz"); }, "ERR_POINTS_MALFORMED", "line 2", "points: .xyz non-number");
    t.check_throws([&] { parse("v 1 2 3\nv 1 2\n", "m.obj"); }, "ERR_POINTS_MALFORMED", "line 2", "points: OBJ vertex with two values");
    t.check_throws([&] { parse("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n1 2 3 4\n", "m.ply"); },
                   "ERR_POINTS_MALFORMED", "line 8", "points: ASCII PLY line with an extra value");
    t.check_throws([&] { parse("ply\nformat ascii 1.0\nelement vertex 1\nproperty half x\nend_header\n", "m.ply"); }, "ERR_POINTS_MALFORMED", "line 4",
                   "points: PLY unknown property type");
    t.check_throws([&] { parse("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\n", "m.ply"); }, "ERR_POINTS_MALFORMED",
                   "end_header", "points: PLY without end_header");
    t.check_throws([&] { parse("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nend_header\n1 2\n", "m.ply"); },
                   "ERR_POINTS_MALFORMED", "'z'", "points: PLY vertex without z");
    t.check_throws([&] { parse("FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nWIDTH 1\nPOINTS 1\nDATA binary_compressed\n1234", "c.pcd"); },
                   "ERR_POINTS_UNSUPPORTED", "binary_compressed", "points: PCD binary_compressed");
    t.check_throws([&] { parse("FIELDS x y z\nSIZE 4 4\nTYPE F F F\nPOINTS 1\nDATA binary\n123456789012", "s.pcd"); }, "ERR_POINTS_MALFORMED",
                   "line 2", "points: PCD SIZE shorter than FIELDS");

    write_file(dir / "mesh.stl", "solid mesh\n facet normal 0 0 1\n  outer loop\n");
    t.check_throws([&] { ibl_points_load((dir / "mesh.stl").string()); }, "ERR_POINTS_FORMAT", ".stl", "points: unknown extension");
    t.check_throws([&] { ibl_points_parse((const uint8_t *) "1 2 3", 5, "a", "las"); }, "ERR_POINTS_FORMAT", "las",
                   "points: unknown format name");
    const std::vector<float> row = {1, 2, 3};
    ibl_npy_save_f32((dir / "flat.npy").string(), {3}, row.data());
    t.check_throws([&] { ibl_points_load((dir / "flat.npy").string()); }, "ERR_POINTS_UNSUPPORTED", "(3,)", "points: .npy of shape (3,)");
}

static void test_points_grouping(ibl_test & t) {
    const nlohmann::json cfg = nlohmann::json::parse(std::ifstream(t.tiny("imagebind.config.json")));
    const nlohmann::json man = nlohmann::json::parse(std::ifstream(t.tiny("manifest.json")));
    nlohmann::json grouping;
    for (const auto & c : man["imagebind_cases"]) {
        if (c["name"] == "point_airplane") grouping = c["grouping"];
    }
    if (!t.check(grouping.is_object(), "points: manifest has point_airplane.grouping")) return;
    const int num_group = cfg["point"]["num_group"], group_size = cfg["point"]["group_size"];
    t.check(grouping.value("fps_start_index", -1) == 0, "points: fixture FPS starts at point 0");

    const ibl_point_cloud pc = ibl_points_load(t.asset("airplane.ply"));
    const ibl_point_groups g = ibl_points_group(pc.xyz.data(), pc.n, num_group, group_size);

    const ibl_npy fps_npy = ibl_npy_load(t.tiny(grouping["fps_idx"].get<std::string>()));
    const ibl_npy knn_npy = ibl_npy_load(t.tiny(grouping["knn_idx"].get<std::string>()));
    t.check(fps_npy.shape == std::vector<int64_t>({num_group}) && knn_npy.shape == std::vector<int64_t>({num_group, group_size}),
            "points: expected fps/knn shapes match the config (" + std::to_string(num_group) + ", " + std::to_string(group_size) + ")");
    t.check(g.fps_idx == fps_npy.to_i64(), "points: FPS indices equal expected/point_airplane.fps_idx.npy exactly");

    const std::vector<int64_t> knn_exp = knn_npy.to_i64();
    int rows_ok = 0, own_centre = 0;
    for (int r = 0; r < num_group; ++r) {
        std::vector<int64_t> row(g.knn_idx.begin() + (size_t) r * group_size, g.knn_idx.begin() + (size_t) (r + 1) * group_size);
        own_centre += std::find(row.begin(), row.end(), g.fps_idx[r]) != row.end();
        std::sort(row.begin(), row.end());
        rows_ok += std::equal(row.begin(), row.end(), knn_exp.begin() + (size_t) r * group_size);
    }
    t.check(rows_ok == num_group, "points: kNN sets equal expected knn_idx (" + std::to_string(rows_ok) + "/" + std::to_string(num_group) + " rows)");
    t.check(own_centre == num_group, "points: every group contains its own centre");

    const std::vector<float> centers_exp = ibl_npy_load(t.tiny(grouping["centers"].get<std::string>())).to_f32();
    t.check_close(g.centers, centers_exp, "points: centers equal expected centers");
    t.check(same_bits(g.centers, centers_exp), "points: centers are bit-identical (gathered points)");

    bool nb_ok = g.neighborhoods.size() == (size_t) num_group * group_size * 3;
    for (size_t gk = 0; nb_ok && gk < g.knn_idx.size(); ++gk) {
        const size_t r = gk / (size_t) group_size;
        for (int c = 0; c < 3; ++c) nb_ok &= g.neighborhoods[gk * 3 + c] == pc.xyz[3 * g.knn_idx[gk] + c] - g.centers[r * 3 + c];
    }
    t.check(nb_ok, "points: neighbourhoods are points minus their centre, shape (G, K, 3)");

    // Upstream Point-Bind sizes: 8192 points, 512 groups of 32 (its speed is measured by `npm run bench`).
    const ibl_point_groups big = ibl_points_group(pc.xyz.data(), pc.n, 512, 32);
    std::set<int64_t> distinct(big.fps_idx.begin(), big.fps_idx.end());
    t.check(distinct.size() == 512 && big.knn_idx.size() == 512 * 32, "points: 8192 points into 512 distinct groups of 32");
}

void test_points(ibl_test & t) {
    std::error_code ec;
    const fs::path dir = fs::temp_directory_path() /
                         ("ibl-test-points-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    fs::create_directories(dir, ec);
    try {
        test_points_readers(t, dir);
        test_points_errors(t, dir);
        test_points_grouping(t);
    } catch (...) {
        fs::remove_all(dir, ec);
        throw;
    }
    fs::remove_all(dir, ec);
}
