// Internal to the Redis client: one connection (plain TCP or TLS on a libevent
// bufferevent) with its FIFO of commands awaiting replies, its timers and its
// reconnect backoff. It must never block, and never hand a reply to the wrong command:
// on any doubt (timeout, protocol error) the connection is dropped and made anew.
#pragma once

#include <event2/event_struct.h>
#include <openssl/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "gateway/admin/metrics.h"
#include "gateway/redis/redis_client.h"

struct bufferevent;
struct redisReader;

namespace sluice::redis::detail {

// Tickets are (sequence << kIndexBits) | connection index; kNoConnection marks the
// tickets of commands answered at once because no connection was ready.
inline constexpr unsigned kIndexBits = 5;
inline constexpr unsigned kNoConnection = (1u << kIndexBits) - 1;

// What the connections of one client share. Lives as long as the client.
struct Shared {
  event_base* base = nullptr;
  config::Redis config;
  RedisMetrics* metrics = nullptr;  // never null (the client's own when none is given)
  SSL_CTX* ssl_ctx = nullptr;       // rediss:// only
  std::vector<std::pair<std::string, std::string>> scripts;  // sha1 → source
  std::string scratch;  // encoding buffer, reused for every command
};

class Connection {
 public:
  Connection(Shared& shared, unsigned index);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool ready() const { return state_ == State::kReady; }
  // Only when ready(). Both return the ticket.
  uint64_t send(Handler* handler, int argc, const char* const* argv, const size_t* lens);
  uint64_t eval(Handler* handler, size_t script, int nkeys, const std::string_view* keys, int nargs,
                const std::string_view* args);
  void cancel(uint64_t ticket);

 private:
  enum class State : uint8_t { kIdle, kConnecting, kHandshake, kReady };
  enum class Kind : uint8_t { kCommand, kEval, kRetry, kHandshake };
  struct Pending {
    Handler* handler = nullptr;  // null once cancelled (the reply is still awaited)
    uint64_t ticket = 0;         // the caller's: a retried EVAL keeps the EVALSHA's
    int64_t deadline_us = 0;
    uint64_t tail_pos = 0;  // kEval: its "numkeys keys... args..." in tails_
    uint32_t tail_len = 0;
    uint32_t argc = 0;
    uint32_t script = 0;
    Kind kind = Kind::kCommand;
  };
  // A FIFO ring that only grows (capacity doubles): no allocation per command.
  class Ring {
   public:
    bool empty() const { return size_ == 0; }
    size_t size() const { return size_; }
    Pending& at(size_t i) { return items_[(head_ + i) & (items_.size() - 1)]; }
    Pending& front() { return at(0); }
    void push(const Pending& p);
    Pending pop();

   private:
    std::vector<Pending> items_;
    size_t head_ = 0;
    size_t size_ = 0;
  };

  static void onRead(bufferevent* bev, void* arg);
  static void onEvent(bufferevent* bev, short what, void* arg);
  static void onTimer(evutil_socket_t fd, short what, void* arg);

  void connect();
  void startHandshake();
  void becomeReady();
  // Drops the connection: every pending command gets kUnavailable (or kTimeout when
  // `timed_out` and its deadline passed), then a reconnect is scheduled.
  void fail(const std::string& reason, bool timed_out = false);
  void closeTransport();
  void checkTimeouts();
  void readReplies();
  void dispatch(Pending& p, redisReply* reply);
  void retryAsEval(const Pending& p);
  // Appends the encoded command in shared_.scratch to the output and queues `p`.
  uint64_t queue(Pending p);
  void armTimer(int64_t us);
  void trimTails();

  Shared& shared_;
  unsigned index_;
  std::string name_;  // host:port, for logs
  State state_ = State::kIdle;
  bufferevent* bev_ = nullptr;
  redisReader* reader_ = nullptr;
  event timer_;  // backoff (kIdle), connect timeout, or the oldest command's deadline
  Ring pending_;
  uint64_t next_seq_ = 1;                               // sequence of the next command queued
  uint64_t front_seq_ = 1;                              // sequence of pending_.front()
  std::vector<std::pair<uint64_t, uint64_t>> retries_;  // caller's ticket → retry's seq
  std::string tails_;        // EVALSHA arguments kept for a NOSCRIPT retry
  uint64_t tails_base_ = 0;  // absolute position of tails_[0]
  unsigned failures_ = 0;    // consecutive failures, for the backoff
  bool ever_ready_ = false;
};

}  // namespace sluice::redis::detail
