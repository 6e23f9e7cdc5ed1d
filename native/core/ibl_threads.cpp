#include "ibl_threads.h"
#include "ibl_error.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#elif defined(__APPLE__)
#include <sys/sysctl.h>
#elif defined(_WIN32)
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#endif

// ggml's GGML_MAX_N_THREADS: a larger count trips an assert in its thread pool.
static constexpr int IBL_GGML_MAX_THREADS = 512;

static int hardware_threads() {
    const unsigned n = std::thread::hardware_concurrency();
    return n > 0 ? (int) n : 1;
}

#if defined(__linux__)
static std::vector<int> allowed_cpus() {
    std::vector<int> cpus;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        for (int i = 0; i < CPU_SETSIZE; ++i) if (CPU_ISSET(i, &set)) cpus.push_back(i);
    }
    if (cpus.empty()) for (int i = 0; i < hardware_threads(); ++i) cpus.push_back(i);
    return cpus;
}

static bool read_int(const std::string & file, long & out) {
    std::ifstream f(file);
    return (bool) (f >> out);
}

// "0-3,8,10-11" → the CPUs it lists.
static std::set<int> parse_cpu_list(const std::string & file) {
    std::set<int> out;
    std::ifstream f(file);
    std::string s;
    if (!std::getline(f, s)) return out;
    size_t i = 0;
    while (i < s.size()) {
        size_t end = s.find(',', i);
        if (end == std::string::npos) end = s.size();
        const std::string part = s.substr(i, end - i);
        const size_t dash = part.find('-');
        try {
            const int a = std::stoi(part.substr(0, dash));
            const int b = dash == std::string::npos ? a : std::stoi(part.substr(dash + 1));
            for (int c = a; c <= b && c - a < 65536; ++c) out.insert(c);
        } catch (...) {
            return {};
        }
        i = end + 1;
    }
    return out;
}

// cgroup v2 `cpu.max` ("max 100000" or "<quota> <period>"), as a container's CPU limit.
static int cgroup_cpu_limit() {
    std::ifstream f("/sys/fs/cgroup/cpu.max");
    std::string quota;
    long period = 0;
    if (!(f >> quota >> period) || quota == "max" || period <= 0) return 0;
    try {
        const double q = std::stod(quota);
        return q > 0 ? std::max(1, (int) std::ceil(q / period)) : 0;
    } catch (...) {
        return 0;
    }
}

static int physical_cores(const std::vector<int> & cpus) {
    // Intel hybrid CPUs list their performance cores here; E-cores slow a ggml graph down (every
    // thread waits for the slowest at each barrier).
    const std::set<int> pcores = parse_cpu_list("/sys/devices/cpu_core/cpus");
    std::set<std::pair<long, long>> cores;
    for (int c : cpus) {
        if (!pcores.empty() && !pcores.count(c)) continue;
        const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
        long core = -1, pkg = 0;
        if (!read_int(base + "core_id", core)) core = 100000 + c;  // no topology: count the CPU itself
        read_int(base + "physical_package_id", pkg);
        cores.insert({pkg, core});
    }
    return (int) cores.size();
}
#endif

int ibl_threads_logical() {
#if defined(__linux__)
    return (int) allowed_cpus().size();
#else
    return hardware_threads();
#endif
}

int ibl_threads_default() {
    int n = 0;
#if defined(__linux__)
    const std::vector<int> cpus = allowed_cpus();
    n = physical_cores(cpus);
    if (n <= 0) n = (int) cpus.size();
    const int quota = cgroup_cpu_limit();
    if (quota > 0) n = std::min(n, quota);
#elif defined(__APPLE__)
    int32_t v = 0;
    size_t len = sizeof(v);
    if (sysctlbyname("hw.perflevel0.physicalcpu", &v, &len, nullptr, 0) == 0 && v > 0) n = v;
    else if ((len = sizeof(v), sysctlbyname("hw.physicalcpu", &v, &len, nullptr, 0) == 0) && v > 0) n = v;
#elif defined(_WIN32)
    DWORD len = 0;
    GetLogicalProcessorInformationEx(RelationProcessorCore, nullptr, &len);
    std::vector<char> buf(len);
    if (len > 0 && GetLogicalProcessorInformationEx(RelationProcessorCore, (PSYSTEM_LOGICAL_PROCESSOR_INFORMATION_EX) buf.data(), &len)) {
        // Count the cores of the highest efficiency class (the performance cores on hybrid CPUs).
        int best_class = -1, count = 0;
        for (DWORD off = 0; off < len;) {
            auto * p = (PSYSTEM_LOGICAL_PROCESSOR_INFORMATION_EX) (buf.data() + off);
            const int cls = p->Processor.EfficiencyClass;
            if (cls > best_class) { best_class = cls; count = 0; }
            if (cls == best_class) ++count;
            off += p->Size;
        }
        n = count;
    }
#endif
    if (n <= 0) n = hardware_threads();
    return std::max(1, std::min(n, ibl_threads_max()));
}

int ibl_threads_max() {
    return std::max(1, std::min(IBL_GGML_MAX_THREADS, 4 * ibl_threads_logical()));
}

int ibl_threads_resolve(int requested, const char * what) {
    if (requested == 0) return ibl_threads_default();
    const int max = ibl_threads_max();
    if (requested < 1 || requested > max) {
        ibl_throw("ERR_INVALID_ARG", "%s must be between 1 and %d (4 × the %d logical CPUs this process may use), got %d",
                  what, max, ibl_threads_logical(), requested);
    }
    return requested;
}

void ibl_threads_probe(int n) {
    std::vector<std::thread> started;
    started.reserve(n > 1 ? n - 1 : 0);
    try {
        for (int i = 1; i < n; ++i) started.emplace_back([] {});
    } catch (const std::system_error & e) {
        for (auto & t : started) t.join();
        ibl_throw("ERR_THREADS", "cannot start %d threads: the system refused the %zu-th (%s); use fewer threads",
                  n, started.size() + 2, e.what());
    }
    for (auto & t : started) t.join();
}
