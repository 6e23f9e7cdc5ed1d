// Minimal check harness for the C++ core tests (ibl-core-tests): each test_<area>.cpp defines
// `void test_<area>(ibl_test & t)` and records checks; main prints "N passed, M failed".
#pragma once

#include "ibl_npy.h"

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

struct ibl_test {
    std::string fixtures;  // .../shared/fixtures
    int passed = 0, failed = 0;

    std::string tiny(const std::string & rel) const { return fixtures + "/tiny-a/" + rel; }
    std::string asset(const std::string & rel) const { return fixtures + "/assets/" + rel; }

    bool check(bool ok, const std::string & what) {
        printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
        (ok ? passed : failed)++;
        return ok;
    }

    // Fixture f32 tolerance: max|got-exp| <= rel * max|exp| and cosine >= cos_min.
    bool check_close(const std::vector<float> & got, const std::vector<float> & exp, const std::string & what,
                     double rel = 1e-4, double cos_min = 0.99999) {
        if (got.size() != exp.size()) {
            return check(false, what + ": size " + std::to_string(got.size()) + " != " + std::to_string(exp.size()));
        }
        double max_exp = 0, max_diff = 0, dot = 0, ng = 0, ne = 0;
        for (size_t i = 0; i < got.size(); ++i) {
            max_exp = std::fmax(max_exp, std::fabs((double) exp[i]));
            max_diff = std::fmax(max_diff, std::fabs((double) got[i] - exp[i]));
            dot += (double) got[i] * exp[i];
            ng += (double) got[i] * got[i];
            ne += (double) exp[i] * exp[i];
        }
        const double cos = (ng == 0 && ne == 0) ? 1.0 : dot / std::sqrt(ng * ne + 1e-300);
        char buf[160];
        snprintf(buf, sizeof(buf), " (max diff %.3g = %.3g of max, cosine %.8f)", max_diff, max_diff / (max_exp + 1e-30), cos);
        return check(max_diff <= rel * max_exp && cos >= cos_min, what + buf);
    }

    // Runs f and checks that it throws ibl_error with `code` whose message contains `needle`.
    template <typename F>
    bool check_throws(F && f, const std::string & code, const std::string & needle, const std::string & what);
};

#include "ibl_error.h"

template <typename F>
bool ibl_test::check_throws(F && f, const std::string & code, const std::string & needle, const std::string & what) {
    try {
        f();
    } catch (const ibl_error & e) {
        const bool ok = e.code == code && std::string(e.what()).find(needle) != std::string::npos;
        return check(ok, what + " [" + e.code + ": " + e.what() + "]");
    } catch (const std::exception & e) {
        return check(false, what + " [unexpected exception: " + e.what() + "]");
    }
    return check(false, what + " [did not throw]");
}
