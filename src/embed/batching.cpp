// Dynamic batching across threads: a decorator around any chip embedder. One worker thread runs the forward
// passes; callers queue their chips and wait. Chips that arrive while a pass runs, or within the window after
// the oldest waiting call, share the next pass (up to max_batch chips), cheaper per chip than one pass per
// call, without any caller having to know about the others. One worker: two (one
// per core) ran `facekit serve` slower on 2 cores (59 against 65 photos/s), the passes fighting the callers'
// detection for the CPU and the batches shrinking to single chips.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "facekit/embedder.hpp"
#include "facekit/error.hpp"

namespace facekit {
namespace detail {

namespace {

class BatchingEmbedder final : public Embedder {
 public:
  BatchingEmbedder(std::unique_ptr<Embedder> inner, const EmbedderOptions& o)
      : inner_(std::move(inner)),
        window_(std::chrono::microseconds(std::max(0, o.batch_window_us))),
        max_batch_(std::max(1, o.max_batch)) {
    worker_ = std::thread([this] { run(); });
  }
  ~BatchingEmbedder() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    worker_.join();
  }

  std::vector<Embedding> embed(const std::vector<Image>& chips) const override {
    if (chips.empty()) return {};
    Request r;
    r.chips = &chips;
    r.arrived = Clock::now();
    std::unique_lock lock(mu_);
    queue_.push_back(&r);
    queued_chips_ += chips.size();
    work_cv_.notify_one();
    done_cv_.wait(lock, [&] { return r.done; });
    if (r.error) std::rethrow_exception(r.error);
    return std::move(r.out);
  }
  const ModelManifest& manifest() const override { return inner_->manifest(); }
  const AlignmentTemplate& alignment() const override { return inner_->alignment(); }

  BatchingStats stats() const {
    std::lock_guard lock(mu_);
    return stats_;
  }

 private:
  using Clock = std::chrono::steady_clock;
  struct Request {
    const std::vector<Image>* chips = nullptr;
    Clock::time_point arrived;
    std::vector<Embedding> out;
    std::exception_ptr error;
    bool done = false;
  };

  static int bucket(size_t n) {
    if (n <= 2) return static_cast<int>(n) - 1;
    if (n <= 4) return 2;
    if (n <= 8) return 3;
    if (n <= 16) return 4;
    if (n <= 32) return 5;
    return 6;
  }

  void run() {
    std::unique_lock lock(mu_);
    for (;;) {
      work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      const auto deadline = queue_.front()->arrived + window_;
      while (!stop_ && queued_chips_ < size_t(max_batch_) && Clock::now() < deadline)
        work_cv_.wait_until(lock, deadline);
      // Whole calls only (a call's chips are never split); at least one call, however large.
      std::vector<Request*> batch;
      size_t n = 0;
      while (!queue_.empty() && (batch.empty() || n + queue_.front()->chips->size() <= size_t(max_batch_))) {
        batch.push_back(queue_.front());
        n += queue_.front()->chips->size();
        queued_chips_ -= queue_.front()->chips->size();
        queue_.pop_front();
      }
      lock.unlock();
      std::vector<Image> all;
      all.reserve(n);
      for (auto* r : batch) all.insert(all.end(), r->chips->begin(), r->chips->end());
      std::vector<Embedding> out;
      std::exception_ptr error;
      try {
        out = inner_->embed(all);
        if (out.size() != all.size()) throw Error(ErrorCode::kInternal, "an embedder returned the wrong number of rows");
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      size_t at = 0;
      for (auto* r : batch) {
        const size_t k = r->chips->size();
        if (error) {
          r->error = error;
        } else {
          r->out.assign(std::make_move_iterator(out.begin() + at), std::make_move_iterator(out.begin() + at + k));
        }
        at += k;
        r->done = true;
      }
      stats_.calls += batch.size();
      stats_.batches += 1;
      stats_.chips += n;
      stats_.batch_sizes[bucket(n)] += 1;
      done_cv_.notify_all();
    }
  }

  std::unique_ptr<Embedder> inner_;
  Clock::duration window_;
  int max_batch_;
  mutable std::mutex mu_;
  mutable std::condition_variable work_cv_, done_cv_;
  mutable std::deque<Request*> queue_;
  mutable size_t queued_chips_ = 0;
  mutable BatchingStats stats_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace

std::unique_ptr<Embedder> make_batching_embedder(std::unique_ptr<Embedder> inner, const EmbedderOptions& options) {
  return std::make_unique<BatchingEmbedder>(std::move(inner), options);
}

const Embedder* fusion_first_member(const Embedder& e);  // embedder.cpp

}  // namespace detail

std::optional<BatchingStats> batching_stats(const Embedder& e) {
  if (const auto* b = dynamic_cast<const detail::BatchingEmbedder*>(&e)) return b->stats();
  // A fusion's members batch, each seeing every chip: the first one's figures stand for it.
  if (const Embedder* m = detail::fusion_first_member(e)) return batching_stats(*m);
  return std::nullopt;
}

}  // namespace facekit
