// The Redis client against a real redis-server (started here on a free loopback port):
// replies, pipelining, EVALSHA → EVAL, AUTH + SELECT, timeouts, outages, cancel, TLS.
#include "gateway/redis/redis_client.h"

#include <event2/event.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "config/yaml_reader.h"
#include "gateway/admin/metrics.h"

namespace sluice::redis {
namespace {

namespace fs = std::filesystem;
constexpr const char* kRedisServer = "/usr/bin/redis-server";

uint16_t freePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// A redis-server child process on 127.0.0.1, no persistence.
class RedisProcess {
 public:
  explicit RedisProcess(std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
    char tmpl[] = "/tmp/sluice-redis-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    port_ = freePort();
  }
  ~RedisProcess() {
    kill();
    fs::remove_all(dir_);
  }
  const std::string& dir() const { return dir_; }
  uint16_t port() const { return port_; }
  void setTlsPort(uint16_t p) { tls_port_ = p; }

  bool start() {
    std::vector<std::string> args = {kRedisServer,
                                     "--bind",
                                     "127.0.0.1",
                                     "--port",
                                     std::to_string(port_),
                                     "--save",
                                     "",
                                     "--appendonly",
                                     "no",
                                     "--dir",
                                     dir_,
                                     "--logfile",
                                     dir_ + "/redis.log",
                                     "--enable-debug-command",
                                     "yes"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(kRedisServer, argv.data());
      _exit(127);
    }
    for (int i = 0; i < 500; ++i) {
      if (ping()) return true;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // A synchronous side channel (hiredis's own blocking client) for checks.
  redisReply* command(const std::string& password, const char* fmt, ...) {
    redisContext* c = redisConnect("127.0.0.1", port_);
    if (c == nullptr || c->err) {
      if (c) redisFree(c);
      return nullptr;
    }
    if (!password.empty()) freeReplyObject(redisCommand(c, "AUTH %s", password.c_str()));
    va_list ap;
    va_start(ap, fmt);
    auto* r = static_cast<redisReply*>(redisvCommand(c, fmt, ap));
    va_end(ap);
    redisFree(c);
    return r;
  }

 private:
  bool ping() {
    redisContext* c = redisConnect("127.0.0.1", port_);
    bool ok = c != nullptr && c->err == 0;
    if (ok) {
      auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
      ok = r != nullptr;
      if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    return ok;
  }

  std::vector<std::string> extra_;
  std::string dir_;
  uint16_t port_ = 0;
  uint16_t tls_port_ = 0;
  pid_t pid_ = -1;
};

struct Result {
  uint64_t ticket = 0;
  Status status = Status::kUnavailable;
  int type = 0;
  std::string str;
  long long integer = 0;
};

class Collect : public Handler {
 public:
  void onRedisReply(uint64_t ticket, Status status, const redisReply* reply) override {
    Result r;
    r.ticket = ticket;
    r.status = status;
    if (reply) {
      r.type = reply->type;
      if (reply->str) r.str.assign(reply->str, reply->len);
      r.integer = reply->integer;
    }
    results.push_back(r);
    if (then) then(r);
  }
  std::vector<Result> results;
  std::function<void(const Result&)> then;
};

config::Redis redisConfig(uint16_t port) {
  config::Redis c;
  c.enabled = true;
  c.host = "127.0.0.1";
  c.port = port;
  std::string error;
  config::detail::resolveAddress("127.0.0.1:" + std::to_string(port), c.address, error);
  c.connect_timeout = config::Duration(500);
  c.command_timeout = config::Duration(200);
  return c;
}

class RedisClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kRedisServer, X_OK) != 0) GTEST_SKIP() << "redis-server is not installed";
    base_ = event_base_new();
    // Wakes the loop now and then so that runUntil() can check its condition.
    tick_ = event_new(
        base_, -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr);
    timeval tv{0, 5000};
    event_add(tick_, &tv);
  }
  void TearDown() override {
    client_.reset();
    for (event* t : timers_) event_free(t);
    if (tick_) event_free(tick_);
    if (base_) event_base_free(base_);
  }
  // Runs the loop until `done` holds; false after 10 s (a guard against hangs, not a
  // timing assertion).
  bool runUntil(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      event_base_loop(base_, EVLOOP_ONCE);
    }
    return true;
  }
  // Runs the loop for about `ms` (to let the client try and fail).
  void runFor(int ms) {
    bool stop = false;
    event* t = evtimer_new(
        base_, [](evutil_socket_t, short, void* p) { *static_cast<bool*>(p) = true; }, &stop);
    timeval tv{ms / 1000, (ms % 1000) * 1000};
    evtimer_add(t, &tv);
    runUntil([&] { return stop; });
    event_free(t);
  }
  // Calls `fn` from the loop after about `ms`.
  void later(int ms, std::function<void()> fn) {
    later_ = std::move(fn);
    event* t = evtimer_new(
        base_, [](evutil_socket_t, short, void* p) { (*static_cast<std::function<void()>*>(p))(); },
        &later_);
    timeval tv{ms / 1000, (ms % 1000) * 1000};
    evtimer_add(t, &tv);
    timers_.push_back(t);
  }
  void connect(const config::Redis& c) {
    client_ = makeClient(base_, c, &metrics_);
    ASSERT_TRUE(runUntil([&] { return client_->connected(); })) << "never connected";
  }
  Result roundTrip(std::initializer_list<std::string_view> args) {
    Collect h;
    client_->send(&h, args);
    EXPECT_TRUE(runUntil([&] { return !h.results.empty(); }));
    return h.results.empty() ? Result{} : h.results[0];
  }

  event_base* base_ = nullptr;
  event* tick_ = nullptr;
  RedisMetrics metrics_;
  std::unique_ptr<Client> client_;
  std::function<void()> later_;
  std::vector<event*> timers_;
};

TEST_F(RedisClientTest, PingSetGet) {
  RedisProcess server;
  ASSERT_TRUE(server.start());
  connect(redisConfig(server.port()));
  Result pong = roundTrip({"PING"});
  EXPECT_EQ(pong.status, Status::kReply);
  EXPECT_EQ(pong.type, REDIS_REPLY_STATUS);
  EXPECT_EQ(pong.str, "PONG");
  EXPECT_EQ(roundTrip({"SET", "greeting", std::string_view("hel\0lo", 6)}).str, "OK");
  Result got = roundTrip({"GET", "greeting"});
  EXPECT_EQ(got.type, REDIS_REPLY_STRING);
  EXPECT_EQ(got.str, std::string("hel\0lo", 6));
  Result err = roundTrip({"INCR", "greeting"});
  EXPECT_EQ(err.status, Status::kReply);
  EXPECT_EQ(err.type, REDIS_REPLY_ERROR);
  EXPECT_EQ(metrics_.replies.get(), 3u);
  EXPECT_EQ(metrics_.errors.get(), 1u);
  EXPECT_EQ(metrics_.connected.get(), 1);
}

TEST_F(RedisClientTest, ConfigBuiltByHandWithLocalhost) {
  RedisProcess server;
  ASSERT_TRUE(server.start());
  config::Redis c;  // no resolved address: "localhost" is taken as 127.0.0.1
  c.enabled = true;
  c.host = "localhost";
  c.port = server.port();
  connect(c);
  EXPECT_EQ(roundTrip({"PING"}).str, "PONG");
}

TEST_F(RedisClientTest, PipelinedRepliesArriveInOrder) {
  RedisProcess server;
  ASSERT_TRUE(server.start());
  connect(redisConfig(server.port()));
  const int n = std::getenv("SLUICE_SANITIZED") ? 500 : 5000;
  Collect h;
  std::vector<uint64_t> tickets;
  for (int i = 0; i < n; ++i) tickets.push_back(client_->send(&h, {"INCR", "counter"}));
  ASSERT_TRUE(runUntil([&] { return static_cast<int>(h.results.size()) == n; }));
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(h.results[i].status, Status::kReply);
    EXPECT_EQ(h.results[i].integer, i + 1);
    EXPECT_EQ(h.results[i].ticket, tickets[i]);
    EXPECT_NE(tickets[i], 0u);
  }
}

TEST_F(RedisClientTest, EvalshaFallsBackToEvalOnNoscript) {
  RedisProcess server;
  ASSERT_TRUE(server.start());
  connect(redisConfig(server.port()));
  Script script("return {KEYS[1], ARGV[1], ARGV[2]}");
  EXPECT_EQ(script.sha1.size(), 40u);
  for (int round = 0; round < 3; ++round) {
    if (round == 2) {
      ASSERT_EQ(roundTrip({"SCRIPT", "FLUSH"}).str, "OK");
    }
    // Several at once: all get NOSCRIPT (rounds 0 and 2) and are resent in order.
    Collect h;
    std::vector<uint64_t> tickets;
    for (int i = 0; i < 20; ++i) {
      std::string key = "k" + std::to_string(i);
      std::string_view keys[] = {key};
      std::string_view args[] = {"a", std::to_string(i) == "" ? "" : "b"};
      tickets.push_back(client_->eval(&h, script, 1, keys, 2, args));
    }
    ASSERT_TRUE(runUntil([&] { return h.results.size() == 20; }));
    for (int i = 0; i < 20; ++i) {
      const Result& r = h.results[i];
      EXPECT_EQ(r.status, Status::kReply);
      EXPECT_EQ(r.type, REDIS_REPLY_ARRAY) << "round " << round << ": " << r.str;
    }
    // Handlers see tickets of their own calls (a retry keeps the caller's ticket).
    std::vector<uint64_t> seen;
    for (const Result& r : h.results) seen.push_back(r.ticket);
    std::sort(seen.begin(), seen.end());
    std::sort(tickets.begin(), tickets.end());
    EXPECT_EQ(seen, tickets);
  }
  redisReply* exists = server.command("", "SCRIPT EXISTS %s", script.sha1.c_str());
  ASSERT_NE(exists, nullptr);
  ASSERT_EQ(exists->elements, 1u);
  EXPECT_EQ(exists->element[0]->integer, 1);
  freeReplyObject(exists);
  EXPECT_EQ(metrics_.errors.get(), 0u);  // NOSCRIPT never reaches the caller
}

TEST_F(RedisClientTest, EvalReplyIsTheScriptsResult) {
  RedisProcess server;
  ASSERT_TRUE(server.start());
  connect(redisConfig(server.port()));
  Script script("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  Collect h;
  std::string_view keys[] = {"n"};
  std::string_view args[] = {"5"};
  client_->eval(&h, script, 1, keys, 1, args);
  client_->eval(&h, script, 1, keys, 1, args);
  ASSERT_TRUE(runUntil([&] { return h.results.size() == 2; }));
  EXPECT_EQ(h.results[0].integer, 5);
  EXPECT_EQ(h.results[1].integer, 10);
}

TEST_F(RedisClientTest, AuthAndSelect) {
  RedisProcess server({"--requirepass", "pa ss:w@rd"});
  ASSERT_TRUE(server.start());
  config::Redis c = redisConfig(server.port());
  c.password = "pa ss:w@rd";
  c.db = 3;
  connect(c);
  EXPECT_EQ(roundTrip({"SET", "in-db-3", "yes"}).str, "OK");
  redisReply* r = server.command("pa ss:w@rd", "SELECT 3");
  freeReplyObject(r);
  // The side channel is a new connection: check db 3 through a MOVE-free way.
  redisContext* ctx = redisConnect("127.0.0.1", server.port());
  ASSERT_TRUE(ctx && !ctx->err);
  freeReplyObject(redisCommand(ctx, "AUTH %s", "pa ss:w@rd"));
  freeReplyObject(redisCommand(ctx, "SELECT 3"));
  auto* got = static_cast<redisReply*>(redisCommand(ctx, "GET in-db-3"));
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(std::string(got->str ? got->str : "", got->len), "yes");
  freeReplyObject(got);
  auto* db0 = static_cast<redisReply*>(redisCommand(ctx, "SELECT 0"));
  freeReplyObject(db0);
  auto* none = static_cast<redisReply*>(redisCommand(ctx, "GET in-db-3"));
  EXPECT_EQ(none->type, REDIS_REPLY_NIL);
  freeReplyObject(none);
  redisFree(ctx);
}

TEST_F(RedisClientTest, WrongPasswordNeverConnects) {
  RedisProcess server({"--requirepass", "right"});
  ASSERT_TRUE(server.start());
  config::Redis c = redisConfig(server.port());
  c.password = "wrong";
  client_ = makeClient(base_, c, &metrics_);
  runFor(300);  // the handshake is refused; the client backs off
  Collect h;
  EXPECT_FALSE(client_->connected());
  client_->send(&h, {"PING"});
  ASSERT_EQ(h.results.size(), 1u);  // answered at once
  EXPECT_EQ(h.results[0].status, Status::kUnavailable);
}

TEST_F(RedisClientTest, CommandTimeoutDropsTheConnectionAndRecovers) {
  RedisProcess server;
  ASSERT_TRUE(server.start());
  config::Redis c = redisConfig(server.port());
  c.command_timeout = config::Duration(100);
  connect(c);
  Collect h;
  client_->send(&h, {"DEBUG", "SLEEP", "0.5"});
  client_->send(&h, {"PING"});  // queued behind it on the same connection
  ASSERT_TRUE(runUntil([&] { return h.results.size() == 2; }));
  EXPECT_EQ(h.results[0].status, Status::kTimeout);
  // The PING was sent at the same time, so its deadline passed too.
  EXPECT_NE(h.results[1].status, Status::kReply);
  EXPECT_GE(metrics_.timeouts.get(), 1u);
  // A new connection; the late DEBUG SLEEP reply is never taken for another command.
  ASSERT_TRUE(runUntil([&] { return client_->connected(); }));
  Result pong;
  ASSERT_TRUE(runUntil([&] {
    pong = roundTrip({"ECHO", "after"});
    return pong.status == Status::kReply;
  }));
  EXPECT_EQ(pong.str, "after");
}

TEST_F(RedisClientTest, PendingCommandsAfterATimeoutAreUnavailable) {
  RedisProcess server;
  ASSERT_TRUE(server.start());
  config::Redis c = redisConfig(server.port());
  c.command_timeout = config::Duration(300);
  connect(c);
  Collect h;
  client_->send(&h, {"DEBUG", "SLEEP", "1.5"});
  // Sent later: still within its own deadline (by 200 ms) when the first one times out;
  // and if the loop is so late that the connection is gone already, it is unavailable
  // too, at once.
  later(200, [&] { client_->send(&h, {"PING"}); });
  ASSERT_TRUE(runUntil([&] { return h.results.size() == 2; }));
  EXPECT_EQ(h.results[0].status, Status::kTimeout);
  EXPECT_EQ(h.results[1].status, Status::kUnavailable);
}

TEST_F(RedisClientTest, ServerKilledThenRestarted) {
  RedisProcess server;
  ASSERT_TRUE(server.start());
  connect(redisConfig(server.port()));
  EXPECT_EQ(roundTrip({"SET", "a", "1"}).str, "OK");
  Collect h;
  client_->send(&h, {"DEBUG", "SLEEP", "0.1"});  // in flight when the server dies
  server.kill();
  ASSERT_TRUE(runUntil([&] { return h.results.size() == 1; }));
  EXPECT_EQ(h.results[0].status, Status::kUnavailable);
  ASSERT_TRUE(runUntil([&] { return !client_->connected(); }));
  Collect down;
  client_->send(&down, {"PING"});
  ASSERT_EQ(down.results.size(), 1u);  // synchronously, without waiting for a timeout
  EXPECT_EQ(down.results[0].status, Status::kUnavailable);
  EXPECT_NE(down.results[0].ticket, 0u);
  client_->cancel(down.results[0].ticket);  // harmless

  ASSERT_TRUE(server.start());
  ASSERT_TRUE(runUntil([&] { return client_->connected(); })) << "did not reconnect";
  EXPECT_EQ(roundTrip({"PING"}).str, "PONG");
  EXPECT_GE(metrics_.reconnects.get(), 1u);
  EXPECT_EQ(metrics_.connected.get(), 1);
}

TEST_F(RedisClientTest, NoServerAtAll) {
  config::Redis c = redisConfig(freePort());
  client_ = makeClient(base_, c, &metrics_);
  runFor(400);
  EXPECT_FALSE(client_->connected());
  Collect h;
  client_->send(&h, {"PING"});
  ASSERT_EQ(h.results.size(), 1u);
  EXPECT_EQ(h.results[0].status, Status::kUnavailable);
}

TEST_F(RedisClientTest, CancelledCommandsAreNeverAnswered) {
  RedisProcess server;
  ASSERT_TRUE(server.start());
  connect(redisConfig(server.port()));
  Collect h;
  uint64_t a = client_->send(&h, {"ECHO", "a"});
  uint64_t b = client_->send(&h, {"ECHO", "b"});
  uint64_t c = client_->send(&h, {"ECHO", "c"});
  client_->cancel(b);
  client_->cancel(b);      // twice
  client_->cancel(0);      // unknown
  client_->cancel(~0ull);  // unknown
  // Cancel `c` from inside the handler of `a`.
  h.then = [&](const Result& r) {
    if (r.ticket == a) client_->cancel(c);
  };
  Result d = roundTrip({"ECHO", "d"});
  EXPECT_EQ(d.str, "d");  // later replies still match their commands
  ASSERT_EQ(h.results.size(), 1u);
  EXPECT_EQ(h.results[0].ticket, a);
  EXPECT_EQ(h.results[0].str, "a");
  client_->cancel(a);  // finished: harmless
  Script script("return ARGV[1]");
  ASSERT_EQ(roundTrip({"SCRIPT", "FLUSH"}).str, "OK");
  std::string_view args[] = {"x"};
  Collect e;
  uint64_t t = client_->eval(&e, script, 0, nullptr, 1, args);
  client_->cancel(t);  // before its NOSCRIPT: no retry is answered
  EXPECT_EQ(roundTrip({"ECHO", "e"}).str, "e");
  EXPECT_TRUE(e.results.empty());
}

TEST_F(RedisClientTest, SendFromInsideAHandler) {
  RedisProcess server;
  ASSERT_TRUE(server.start());
  connect(redisConfig(server.port()));
  Collect h;
  int chained = 0;
  h.then = [&](const Result& r) {
    if (++chained < 10) client_->send(&h, {"INCR", "chain"});
  };
  client_->send(&h, {"INCR", "chain"});
  ASSERT_TRUE(runUntil([&] { return h.results.size() == 10; }));
  EXPECT_EQ(h.results.back().integer, 10);
}

TEST_F(RedisClientTest, PoolSpreadsOverConnections) {
  RedisProcess server;
  ASSERT_TRUE(server.start());
  config::Redis c = redisConfig(server.port());
  c.pool = 3;
  client_ = makeClient(base_, c, &metrics_);
  ASSERT_TRUE(runUntil([&] { return metrics_.connected.get() == 3; }));
  Collect h;
  for (int i = 0; i < 30; ++i) client_->send(&h, {"CLIENT", "ID"});
  ASSERT_TRUE(runUntil([&] { return h.results.size() == 30; }));
  std::set<long long> ids;
  for (const Result& r : h.results) ids.insert(r.integer);
  EXPECT_EQ(ids.size(), 3u);
}

class RedisTlsTest : public RedisClientTest {
 protected:
  // CA + server certificate (for IP 127.0.0.1) made with the openssl CLI.
  static bool makeCertificates(const std::string& dir) {
    std::string cmd =
        "cd '" + dir +
        "' && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=test CA' "
        "-keyout ca.key -out ca.pem && openssl req -newkey rsa:2048 -nodes -subj "
        "'/CN=localhost' -keyout server.key -out server.csr && printf "
        "'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext && openssl x509 -req -in "
        "server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out "
        "server.pem && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=other' "
        "-keyout other.key -out other.pem";
    return std::system(("(" + cmd + ") >/dev/null 2>&1").c_str()) == 0;
  }
};

TEST_F(RedisTlsTest, RedissVerifiesTheServer) {
  if (std::system("command -v openssl >/dev/null") != 0) GTEST_SKIP() << "no openssl CLI";
  uint16_t tls_port = freePort();
  char tmpl[] = "/tmp/sluice-redis-certs-XXXXXX";
  std::string certs = mkdtemp(tmpl);
  ASSERT_TRUE(makeCertificates(certs));
  RedisProcess server({"--tls-port", std::to_string(tls_port), "--tls-cert-file",
                       certs + "/server.pem", "--tls-key-file", certs + "/server.key",
                       "--tls-ca-cert-file", certs + "/ca.pem", "--tls-auth-clients", "no"});
  ASSERT_TRUE(server.start());
  config::Redis c = redisConfig(tls_port);
  c.tls = true;
  c.tls_ca = certs + "/ca.pem";
  connect(c);
  EXPECT_EQ(roundTrip({"SET", "over", "tls"}).str, "OK");
  EXPECT_EQ(roundTrip({"GET", "over"}).str, "tls");
  client_.reset();

  // Signed by another CA: never connects.
  c.tls_ca = certs + "/other.pem";
  client_ = makeClient(base_, c, &metrics_);
  runFor(400);
  EXPECT_FALSE(client_->connected());
  client_.reset();

  // Unless verification is off.
  c.tls_verify = false;
  connect(c);
  EXPECT_EQ(roundTrip({"GET", "over"}).str, "tls");
  client_.reset();
  fs::remove_all(certs);
}

}  // namespace
}  // namespace sluice::redis
