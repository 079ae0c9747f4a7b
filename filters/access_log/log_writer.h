// Gets log lines from worker threads into one output (a file, stdout or stderr) without
// ever blocking a worker: each thread appends to its own lock-free queue of blocks and
// one background thread per output drains them all with writev. A worker never locks,
// waits or makes a system call here (except the first line a thread ever writes to an
// output); when the output falls behind past a cap, lines are dropped and counted.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace sluice::access_log {

class WriterCore;

class LogWriter {
 public:
  // "stdout", "stderr" or an absolute file path. Every user of one output shares one
  // writer (several access_log filters, and a config before and after a reload), so
  // there is one thread and one descriptor per output. The file is opened by the writer
  // thread when the first line arrives.
  static std::shared_ptr<LogWriter> forOutput(const std::string& output);

  // Stops the writer thread after it wrote everything queued. The thread is joined at
  // process exit at the latest (see the .cc), so the last snapshot can be released from
  // any thread without blocking it.
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Queues one line (with its '\n'). Any thread; never blocks. False (and counted) when
  // this thread already has more than `max_pending` bytes not yet written.
  bool append(std::string_view line, size_t max_pending);
  // Close and reopen the file before the next write (log rotation). Any thread.
  void reopen();
  // Writes everything queued and stops the thread now (for tests; shutdown relies on
  // the destructor). Lines appended after close() are never written.
  void close();

  const std::string& output() const;
  uint64_t lines() const;    // accepted by append()
  uint64_t dropped() const;  // refused by append(), or lost to a failed write

  // Prometheus samples for every live writer (HELP/TYPE once).
  static void appendMetrics(std::string& out);

 private:
  struct Key {};  // only forOutput() makes writers

 public:
  LogWriter(Key, std::shared_ptr<WriterCore> core);

 private:
  std::shared_ptr<WriterCore> core_;
};

}  // namespace sluice::access_log
