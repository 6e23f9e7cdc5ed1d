// The long jobs running on the thread pool for one JS environment. When the environment ends
// (process.exit(), the end of a worker thread) Node joins the thread pool: every job must then stop at
// once instead of finishing an encode or a generation, and no job may wait for the JS thread, which
// will never run again. ibl_jobs_stop() sets every job's abort flag and closes the thread-safe
// functions they call back through (a call blocked on a full queue returns napi_closing).
#pragma once

#include <napi.h>

#include <atomic>
#include <list>
#include <memory>
#include <mutex>

struct ibl_job {
    std::shared_ptr<std::atomic<bool>>          abort;
    std::shared_ptr<Napi::ThreadSafeFunction>   stream;
};

class ibl_job_registry {
public:
    using handle = std::list<ibl_job>::iterator;

    // On the worker thread, as the job starts.
    handle add(const ibl_job & job) {
        std::lock_guard<std::mutex> l(mu_);
        if (stopped_ && job.abort) job.abort->store(true);
        return jobs_.insert(jobs_.end(), job);
    }
    // On the worker thread, before the job releases its thread-safe function.
    void remove(handle h) {
        std::lock_guard<std::mutex> l(mu_);
        jobs_.erase(h);
    }
    // On the JS thread, as the environment ends.
    void stop() {
        std::lock_guard<std::mutex> l(mu_);
        stopped_ = true;
        for (auto & j : jobs_) {
            if (j.abort) j.abort->store(true);
            if (j.stream) j.stream->Abort();
        }
    }
    bool stopped() const { return stopped_; }

private:
    std::mutex         mu_;
    std::list<ibl_job> jobs_;
    std::atomic<bool>  stopped_{false};
};
