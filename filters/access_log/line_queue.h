// One thread's queue of log lines to the writer thread of one output: single producer,
// single consumer, lock-free, unbounded by itself (the producer checks how far behind
// the consumer is). The producer never waits, locks or makes a system call, except for
// a new block (malloc) every 64 KiB of lines when no spare one is back yet.
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

namespace sluice::access_log {

inline constexpr size_t kBlockSize = 64 * 1024;

// A piece of one thread's queue. The producer fills it and publishes `used` after each
// whole line, so the consumer only ever sees complete lines.
struct Block {
  explicit Block(size_t cap) : capacity(cap), data(std::make_unique_for_overwrite<char[]>(cap)) {}
  std::atomic<Block*> next{nullptr};
  std::atomic<size_t> used{0};
  const size_t capacity;
  std::unique_ptr<char[]> data;
};

inline Block* newBlock(size_t cap) { return std::make_unique<Block>(cap).release(); }
inline void freeBlock(Block* b) { std::unique_ptr<Block> owned(b); }

// One producer thread's queue into one output: a singly linked list of blocks from
// head_ (consumer) to tail_ (producer). The list owns its blocks; the consumer frees
// the ones it has written, keeping one as a spare the producer picks up again.
class LineQueue {
 public:
  LineQueue() : tail_(newBlock(kBlockSize)), head_(tail_) {}
  ~LineQueue() {
    for (Block* b = head_; b;) {
      Block* next = b->next.load(std::memory_order_relaxed);
      freeBlock(b);
      b = next;
    }
    if (Block* s = spare_.load(std::memory_order_relaxed)) freeBlock(s);
  }
  LineQueue(const LineQueue&) = delete;
  LineQueue& operator=(const LineQueue&) = delete;

  // ---- producer ----
  bool push(std::string_view line, size_t max_pending) {
    const size_t n = line.size();
    const uint64_t lag = produced_ - consumed_.load(std::memory_order_acquire);
    if (lag + n > max_pending) {
      bump(dropped_);
      return false;
    }
    if (tail_->capacity - tail_used_ < n) {
      Block* b = spare_.exchange(nullptr, std::memory_order_acquire);
      if (b && b->capacity < n) {
        freeBlock(b);
        b = nullptr;
      }
      if (!b) b = newBlock(std::max(kBlockSize, n));
      b->used.store(0, std::memory_order_relaxed);
      b->next.store(nullptr, std::memory_order_relaxed);
      tail_->next.store(b, std::memory_order_release);  // tail_ is final from here on
      tail_ = b;
      tail_used_ = 0;
    }
    std::memcpy(tail_->data.get() + tail_used_, line.data(), n);
    tail_used_ += n;
    tail_->used.store(tail_used_, std::memory_order_release);
    produced_ += n;
    bump(lines_);
    return true;
  }

  // ---- consumer ----
  // Adds the published, unwritten data as iovecs (while there is room); remembers
  // where it stopped for consume().
  void collect(std::vector<iovec>& iov, size_t max_iov) {
    Block* b = head_;
    size_t off = head_off_;
    collected_ = 0;
    for (;;) {
      // `next` first: once it is set, `used` is final.
      Block* next = b->next.load(std::memory_order_acquire);
      size_t used = b->used.load(std::memory_order_acquire);
      if (used > off) {
        if (iov.size() >= max_iov) break;
        iov.push_back({b->data.get() + off, used - off});
        collected_ += used - off;
        off = used;
      }
      if (!next) break;
      b = next;
      off = 0;
    }
    end_block_ = b;
    end_off_ = off;
  }

  // The data of the last collect() is written (or given up): release it.
  void consume() {
    while (head_ != end_block_) {
      Block* done = head_;
      head_ = done->next.load(std::memory_order_relaxed);
      if (Block* old = spare_.exchange(done, std::memory_order_acq_rel)) freeBlock(old);
    }
    head_off_ = end_off_;
    consumed_.store(consumed_.load(std::memory_order_relaxed) + collected_,
                    std::memory_order_release);
    collected_ = 0;
  }

  uint64_t lines() const { return lines_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  // Counters with one writer: a plain load and store instead of a locked add.
  static void bump(std::atomic<uint64_t>& c) {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  // Producer side.
  Block* tail_;
  size_t tail_used_ = 0;
  uint64_t produced_ = 0;
  std::atomic<uint64_t> lines_{0};
  std::atomic<uint64_t> dropped_{0};
  // Consumer side, on its own cache line.
  alignas(64) std::atomic<uint64_t> consumed_{0};
  Block* head_;
  size_t head_off_ = 0;
  Block* end_block_ = nullptr;
  size_t end_off_ = 0;
  size_t collected_ = 0;
  alignas(64) std::atomic<Block*> spare_{nullptr};
};

}  // namespace sluice::access_log
