// ibl-core-tests <fixtures dir>: the C++ core checked against the upstream fixtures, without Node.
#include "ibl_test.h"

#include <cstring>

void test_npy(ibl_test & t);
void test_encoder(ibl_test & t);
void test_points(ibl_test & t);
void test_image(ibl_test & t);
void test_audio(ibl_test & t);
void test_text(ibl_test & t);
void test_knn(ibl_test & t);
void test_llm(ibl_test & t);
void test_kernels(ibl_test & t);

struct test_entry { const char * name; void (*fn)(ibl_test &); };

static const test_entry TESTS[] = {
    {"npy", test_npy},
    {"encoder", test_encoder},
    {"points", test_points},
    {"image", test_image},
    {"audio", test_audio},
    {"text", test_text},
    {"knn", test_knn},
    {"llm", test_llm},
    {"kernels", test_kernels},
};

int main(int argc, char ** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: ibl-core-tests <fixtures dir> [test name ...]\n");
        return 2;
    }
    ibl_test t;
    t.fixtures = argv[1];
    for (const auto & e : TESTS) {
        bool selected = argc == 2;
        for (int i = 2; i < argc; ++i) selected |= strcmp(argv[i], e.name) == 0;
        if (!selected) continue;
        try {
            e.fn(t);
        } catch (const std::exception & ex) {
            t.check(false, std::string(e.name) + ": uncaught exception: " + ex.what());
        }
    }
    printf("%d passed, %d failed\n", t.passed, t.failed);
    return t.failed == 0 ? 0 : 1;
}
