// The Lambda invoker against tests/support/lambda_stub.py (started here on a free
// loopback port), which checks every SigV4 signature on its own: outcomes, keep-alive,
// timeouts, cancel, a connection gone stale while idle, TLS.
#include "gateway/function/lambda_invoker.h"

#include <event2/event.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace sluice::function {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kAccessKey = "AKIDINVOKERTEST";
constexpr const char* kSecret = "invoker/test+secret";
constexpr const char* kRegion = "eu-west-1";
constexpr const char* kArn = "arn:aws:lambda:eu-west-1:123456789012:function:hello";

fs::path stubPath() {
  return fs::path(__FILE__).parent_path().parent_path() / "support" / "lambda_stub.py";
}

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

// lambda_stub.py in a child process; its stdin is a pipe held here (EOF → it exits).
class Stub {
 public:
  explicit Stub(std::vector<std::string> extra = {}, uint16_t port = 0) {
    char tmpl[] = "/tmp/sluice-lambda-stub-XXXXXX";
    dir_ = mkdtemp(tmpl);
    log_ = dir_ + "/requests.jsonl";
    int in[2];
    int out[2];
    if (pipe(in) != 0 || pipe(out) != 0) return;
    std::vector<std::string> args = {"python3",
                                     stubPath().string(),
                                     "--port",
                                     std::to_string(port),
                                     "--log",
                                     log_,
                                     "--access-key",
                                     kAccessKey,
                                     "--secret",
                                     kSecret,
                                     "--region",
                                     kRegion,
                                     "--exit-on-stdin-eof"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      close(in[1]);
      close(out[0]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp("python3", argv.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    stdin_ = in[1];
    stdout_ = out[0];
    std::string line;
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline && (line.empty() || line.back() != '\n')) {
      pollfd p{stdout_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char c;
      if (read(stdout_, &c, 1) != 1) break;
      line.push_back(c);
    }
    if (line.rfind("PORT ", 0) == 0) port_ = static_cast<uint16_t>(std::stoi(line.substr(5)));
  }
  ~Stub() {
    kill();
    fs::remove_all(dir_);
  }
  void kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (stdin_ >= 0) close(stdin_);
    if (stdout_ >= 0) close(stdout_);
    stdin_ = stdout_ = -1;
  }
  uint16_t port() const { return port_; }
  const std::string& dir() const { return dir_; }

  std::vector<nlohmann::json> records() const {
    std::vector<nlohmann::json> out;
    std::ifstream f(log_);
    std::string line;
    while (std::getline(f, line)) {
      if (!line.empty()) out.push_back(nlohmann::json::parse(line));
    }
    return out;
  }

 private:
  std::string dir_;
  std::string log_;
  pid_t pid_ = -1;
  int stdin_ = -1;
  int stdout_ = -1;
  uint16_t port_ = 0;
};

struct Recorder : InvokeHandler {
  std::vector<Result> results;
  void onInvokeResult(Result&& r) override { results.push_back(std::move(r)); }
};

class LambdaInvokerTest : public ::testing::Test {
 protected:
  void SetUp() override { base_ = event_base_new(); }
  void TearDown() override {
    invoker_.reset();  // before the loop it lives on
    event_base_free(base_);
  }

  static config::Function function(uint16_t port, bool tls = false) {
    config::Function fn;
    fn.name = "hello";
    fn.runtime = config::FunctionRuntime::kLambda;
    fn.tls = tls;
    fn.endpoint = std::string(tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port);
    fn.host = "127.0.0.1";
    fn.port = port;
    auto* a = reinterpret_cast<sockaddr_in*>(&fn.address.addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fn.address.len = sizeof(sockaddr_in);
    fn.address.text = "127.0.0.1:" + std::to_string(port);
    fn.function_name = kArn;
    fn.qualifier = "live";
    fn.region = kRegion;
    fn.access_key_id = kAccessKey;
    fn.secret_access_key = kSecret;
    fn.timeout = std::chrono::milliseconds(3000);
    fn.connect_timeout = std::chrono::milliseconds(1000);
    return fn;
  }

  bool runUntil(const std::function<bool()>& done, int ms = 5000) {
    // A ticking timer so that EVLOOP_ONCE returns even when nothing else happens.
    event* tick = event_new(
        base_, -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr);
    timeval tv{0, 5000};
    event_add(tick, &tv);
    auto deadline = Clock::now() + std::chrono::milliseconds(ms);
    while (!done() && Clock::now() < deadline) event_base_loop(base_, EVLOOP_ONCE);
    event_free(tick);
    return done();
  }
  void runFor(int ms) {
    runUntil([] { return false; }, ms);
  }

  // One invocation, run to its result (which must not arrive inside invoke()).
  Result call(std::string payload, int ms = 5000) {
    Recorder r;
    invoker_->invoke(std::move(payload), "req-1", &r);
    EXPECT_TRUE(r.results.empty()) << "called back from inside invoke()";
    EXPECT_TRUE(runUntil([&] { return !r.results.empty(); }, ms));
    EXPECT_EQ(r.results.size(), 1u);
    return r.results.empty() ? Result{} : std::move(r.results[0]);
  }

  event_base* base_ = nullptr;
  std::unique_ptr<Invoker> invoker_;
};

TEST_F(LambdaInvokerTest, InvokesSignedAndReturnsTheReply) {
  Stub stub;
  ASSERT_NE(stub.port(), 0);
  invoker_ = makeLambdaInvoker(base_, function(stub.port()));
  Result r = call(R"({"rawPath":"/hello","x":"é"})");
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.detail;
  nlohmann::json reply = nlohmann::json::parse(r.payload);
  EXPECT_EQ(reply["statusCode"], 200);
  nlohmann::json body = nlohmann::json::parse(reply["body"].get<std::string>());
  EXPECT_EQ(body["event"]["rawPath"], "/hello");
  EXPECT_EQ(body["event"]["x"], "é");

  auto recs = stub.records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_TRUE(recs[0]["signature_ok"].get<bool>()) << recs[0]["signature_error"];
  EXPECT_EQ(recs[0]["path"],
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3A"
            "hello/invocations");
  EXPECT_EQ(recs[0]["function"], kArn);
  EXPECT_EQ(recs[0]["qualifier"], "live");
  EXPECT_EQ(recs[0]["invocation_type"], "RequestResponse");
  EXPECT_EQ(recs[0]["body"], R"({"rawPath":"/hello","x":"é"})");
  EXPECT_EQ(recs[0]["headers"]["content-type"], "application/json");
  EXPECT_EQ(recs[0]["headers"]["host"], "127.0.0.1:" + std::to_string(stub.port()));
}

TEST_F(LambdaInvokerTest, FunctionError) {
  Stub stub;
  invoker_ = makeLambdaInvoker(base_, function(stub.port()));
  Result r = call(R"({"rawPath":"/api/error"})");
  ASSERT_EQ(r.outcome, Outcome::kFunctionError) << r.detail;
  EXPECT_EQ(nlohmann::json::parse(r.payload)["errorMessage"], "boom");
  EXPECT_NE(r.detail.find("Unhandled"), std::string::npos) << r.detail;
}

TEST_F(LambdaInvokerTest, EventInvocationIsAccepted) {
  Stub stub;
  config::Function fn = function(stub.port());
  fn.invocation_event = true;
  invoker_ = makeLambdaInvoker(base_, fn);
  Result r = call(R"({"rawPath":"/slow","queryStringParameters":{"ms":"5000"}})", 2000);
  EXPECT_EQ(r.outcome, Outcome::kAccepted) << r.detail;
  auto recs = stub.records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0]["invocation_type"], "Event");
  EXPECT_TRUE(recs[0]["signature_ok"].get<bool>());
}

TEST_F(LambdaInvokerTest, ThrottledAndServiceErrors) {
  Stub stub;
  invoker_ = makeLambdaInvoker(base_, function(stub.port()));
  Result r = call(R"({"rawPath":"/throttle"})");
  EXPECT_EQ(r.outcome, Outcome::kThrottled);
  EXPECT_NE(r.detail.find("TooManyRequestsException"), std::string::npos) << r.detail;

  r = call("not json");
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_NE(r.detail.find("400"), std::string::npos) << r.detail;
  EXPECT_NE(r.detail.find("InvalidRequestContentException"), std::string::npos) << r.detail;
  EXPECT_NE(r.detail.find("Could not parse request body"), std::string::npos) << r.detail;
}

TEST_F(LambdaInvokerTest, WrongSecretIsRefused) {
  Stub stub;
  config::Function fn = function(stub.port());
  fn.secret_access_key = "not-the-secret";
  invoker_ = makeLambdaInvoker(base_, fn);
  Result r = call(R"({"rawPath":"/hello"})");
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_NE(r.detail.find("403"), std::string::npos) << r.detail;
  EXPECT_NE(r.detail.find("signature mismatch"), std::string::npos) << r.detail;
  EXPECT_EQ(r.detail.find("not-the-secret"), std::string::npos);
  auto recs = stub.records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_FALSE(recs[0]["signature_ok"].get<bool>());
}

TEST_F(LambdaInvokerTest, SessionTokenIsSentAndSigned) {
  Stub stub({"--session-token", "the/session+token=="});
  config::Function fn = function(stub.port());
  fn.session_token = "the/session+token==";
  invoker_ = makeLambdaInvoker(base_, fn);
  EXPECT_EQ(call(R"({"rawPath":"/hello"})").outcome, Outcome::kOk);
  invoker_.reset();
  fn.session_token.clear();
  invoker_ = makeLambdaInvoker(base_, fn);
  EXPECT_EQ(call(R"({"rawPath":"/hello"})").outcome, Outcome::kFailed);
  auto recs = stub.records();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_TRUE(recs[0]["signature_ok"].get<bool>()) << recs[0]["signature_error"];
  EXPECT_EQ(recs[0]["headers"]["x-amz-security-token"], "the/session+token==");
  EXPECT_FALSE(recs[1]["signature_ok"].get<bool>());
}

TEST_F(LambdaInvokerTest, NoQualifierNoQuery) {
  Stub stub;
  config::Function fn = function(stub.port());
  fn.qualifier.clear();
  fn.function_name = "plain-name_1";
  invoker_ = makeLambdaInvoker(base_, fn);
  EXPECT_EQ(call(R"({"rawPath":"/"})").outcome, Outcome::kOk);
  auto recs = stub.records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0]["path"], "/2015-03-31/functions/plain-name_1/invocations");
  EXPECT_EQ(recs[0]["query"], "");
  EXPECT_TRUE(recs[0]["signature_ok"].get<bool>());
}

TEST_F(LambdaInvokerTest, ChunkedAndLargeReplies) {
  Stub stub;
  invoker_ = makeLambdaInvoker(base_, function(stub.port()));
  Result r = call(R"({"rawPath":"/chunked"})");
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.detail;
  EXPECT_EQ(nlohmann::json::parse(r.payload)["statusCode"], 200);

  r = call(R"({"rawPath":"/big","queryStringParameters":{"bytes":"1000000"}})");
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.detail;
  EXPECT_EQ(r.payload, std::string(1000000, 'x'));

  r = call(R"({"rawPath":"/big","queryStringParameters":{"bytes":"7000000"}})");
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_NE(r.detail.find("over the limit"), std::string::npos) << r.detail;

  // Still usable afterwards (on a new connection).
  EXPECT_EQ(call(R"({"rawPath":"/hello"})").outcome, Outcome::kOk);
}

TEST_F(LambdaInvokerTest, KeepAliveReusesConnections) {
  Stub stub;
  invoker_ = makeLambdaInvoker(base_, function(stub.port()));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(call(R"({"rawPath":"/hello"})").outcome, Outcome::kOk);
  // Two at once need two connections; both stay for later.
  Recorder a;
  Recorder b;
  invoker_->invoke(R"({"rawPath":"/slow","queryStringParameters":{"ms":"100"}})", "", &a);
  invoker_->invoke(R"({"rawPath":"/slow","queryStringParameters":{"ms":"100"}})", "", &b);
  ASSERT_TRUE(runUntil([&] { return a.results.size() + b.results.size() == 2; }));
  EXPECT_EQ(a.results[0].outcome, Outcome::kOk);
  EXPECT_EQ(b.results[0].outcome, Outcome::kOk);
  ASSERT_EQ(call(R"({"rawPath":"/hello"})").outcome, Outcome::kOk);
  // Connection: close from the service is honoured.
  ASSERT_EQ(call(R"({"rawPath":"/close"})").outcome, Outcome::kOk);
  ASSERT_EQ(call(R"({"rawPath":"/hello"})").outcome, Outcome::kOk);

  auto recs = stub.records();
  ASSERT_EQ(recs.size(), 8u);
  std::set<int> ports;
  for (const auto& rec : recs) ports.insert(rec["client_port"].get<int>());
  // The first connection, and a second one for the concurrent pair; after the close,
  // the other idle one serves.
  EXPECT_EQ(ports.size(), 2u);
  EXPECT_EQ(recs[0]["client_port"], recs[1]["client_port"]);
  EXPECT_EQ(recs[1]["client_port"], recs[2]["client_port"]);
  EXPECT_NE(recs[3]["client_port"], recs[4]["client_port"]);
  EXPECT_NE(recs[7]["client_port"], recs[6]["client_port"]);
}

TEST_F(LambdaInvokerTest, NoIdleConnectionsWhenMaxIdleIsZero) {
  Stub stub;
  config::Function fn = function(stub.port());
  fn.max_idle_connections = 0;
  invoker_ = makeLambdaInvoker(base_, fn);
  for (int i = 0; i < 2; ++i) ASSERT_EQ(call(R"({"rawPath":"/hello"})").outcome, Outcome::kOk);
  auto recs = stub.records();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_NE(recs[0]["client_port"], recs[1]["client_port"]);
}

TEST_F(LambdaInvokerTest, TimeoutClosesTheConnection) {
  Stub stub;
  config::Function fn = function(stub.port());
  fn.timeout = std::chrono::milliseconds(300);
  invoker_ = makeLambdaInvoker(base_, fn);
  auto started = Clock::now();
  Result r = call(R"({"rawPath":"/slow","queryStringParameters":{"ms":"3000"}})");
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  EXPECT_EQ(r.outcome, Outcome::kTimeout);
  EXPECT_GE(took.count(), 250);
  EXPECT_LT(took.count(), 2000);
  // The late reply never reaches the next invocation: that one gets its own.
  r = call(R"({"rawPath":"/next"})");
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.detail;
  nlohmann::json reply = nlohmann::json::parse(r.payload);
  EXPECT_NE(reply["body"].get<std::string>().find("/next"), std::string::npos);
  auto recs = stub.records();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_NE(recs[0]["client_port"], recs[1]["client_port"]);
}

TEST_F(LambdaInvokerTest, CancelBeforeReplyNeverCallsBack) {
  Stub stub;
  invoker_ = makeLambdaInvoker(base_, function(stub.port()));
  // Cancelled once the request has reached the service: the reply is drained and the
  // connection serves the next call.
  Recorder cancelled;
  uint64_t t = invoker_->invoke(R"({"rawPath":"/slow","queryStringParameters":{"ms":"200"}})", "",
                                &cancelled);
  ASSERT_TRUE(runUntil([&] { return stub.records().size() == 1; }));
  invoker_->cancel(t);
  invoker_->cancel(t);  // twice is harmless
  runFor(1000);         // the reply (200 ms later) is drained meanwhile
  EXPECT_TRUE(cancelled.results.empty());
  ASSERT_EQ(call(R"({"rawPath":"/hello"})").outcome, Outcome::kOk);
  auto recs = stub.records();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0]["client_port"], recs[1]["client_port"]);

  // Cancelled at once (still connecting): nothing is sent at all.
  Recorder early;
  invoker_->invoke(R"({"rawPath":"/hello"})", "", &early);  // takes the idle connection
  uint64_t t2 = invoker_->invoke(R"({"rawPath":"/never"})", "", &cancelled);
  invoker_->cancel(t2);
  runFor(300);
  EXPECT_TRUE(cancelled.results.empty());
  ASSERT_EQ(early.results.size(), 1u);
  recs = stub.records();
  ASSERT_EQ(recs.size(), 3u);
  for (const auto& rec : recs)
    EXPECT_EQ(rec["body"].get<std::string>().find("/never"), std::string::npos);

  // Cancelled after the timeout fired is a no-op; unknown tickets too.
  invoker_->cancel(t);
  invoker_->cancel(12345);
}

TEST_F(LambdaInvokerTest, CancelFromTheHandlerOfAnotherCall) {
  Stub stub;
  invoker_ = makeLambdaInvoker(base_, function(stub.port()));
  Recorder victim;
  uint64_t victim_ticket = 0;
  struct Canceller : InvokeHandler {
    Invoker* invoker = nullptr;
    uint64_t* ticket = nullptr;
    int calls = 0;
    void onInvokeResult(Result&&) override {
      ++calls;
      invoker->cancel(*ticket);
    }
  } canceller;
  canceller.invoker = invoker_.get();
  canceller.ticket = &victim_ticket;
  invoker_->invoke(R"({"rawPath":"/hello"})", "", &canceller);
  victim_ticket =
      invoker_->invoke(R"({"rawPath":"/slow","queryStringParameters":{"ms":"200"}})", "", &victim);
  runFor(600);
  EXPECT_EQ(canceller.calls, 1);
  EXPECT_TRUE(victim.results.empty());
}

TEST_F(LambdaInvokerTest, HandlerMayDestroyTheInvoker) {
  Stub stub;
  invoker_ = makeLambdaInvoker(base_, function(stub.port()));
  struct Destroyer : InvokeHandler {
    std::unique_ptr<Invoker>* invoker = nullptr;
    int calls = 0;
    void onInvokeResult(Result&&) override {
      ++calls;
      invoker->reset();
    }
  } destroyer;
  destroyer.invoker = &invoker_;
  Recorder other;
  invoker_->invoke(R"({"rawPath":"/hello"})", "", &destroyer);
  invoker_->invoke(R"({"rawPath":"/slow","queryStringParameters":{"ms":"300"}})", "", &other);
  ASSERT_TRUE(runUntil([&] { return destroyer.calls == 1; }));
  runFor(500);
  EXPECT_EQ(invoker_, nullptr);
  EXPECT_TRUE(other.results.empty());
}

TEST_F(LambdaInvokerTest, DestroyedWithCallsInFlight) {
  Stub stub;
  invoker_ = makeLambdaInvoker(base_, function(stub.port()));
  Recorder r;
  invoker_->invoke(R"({"rawPath":"/slow","queryStringParameters":{"ms":"300"}})", "", &r);
  invoker_->invoke(R"({"rawPath":"/hello"})", "", &r);
  ASSERT_TRUE(runUntil([&] { return stub.records().size() == 2; }));
  invoker_->invoke(R"({"rawPath":"/hello"})", "", &r);  // still connecting, or queued
  invoker_.reset();
  runFor(500);
  EXPECT_LE(r.results.size(), 1u);  // the fast one may have come back before the reset
}

TEST_F(LambdaInvokerTest, ConnectionRefused) {
  uint16_t port = freePort();  // nothing listens there
  invoker_ = makeLambdaInvoker(base_, function(port));
  Result r = call(R"({"rawPath":"/hello"})");
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_NE(r.detail.find("connect"), std::string::npos) << r.detail;
}

TEST_F(LambdaInvokerTest, UnresolvedAddressFailsOnTheLoop) {
  config::Function fn = function(1);
  fn.address = {};
  invoker_ = makeLambdaInvoker(base_, fn);
  Result r = call(R"({"rawPath":"/hello"})");
  EXPECT_EQ(r.outcome, Outcome::kFailed);
}

// The service goes away while a connection sits idle, and comes back on the same port:
// the stale connection is found out when reused, and the request goes again on a new one.
TEST_F(LambdaInvokerTest, StaleIdleConnectionIsRetriedOnce) {
  auto stub = std::make_unique<Stub>();
  uint16_t port = stub->port();
  invoker_ = makeLambdaInvoker(base_, function(port));
  ASSERT_EQ(call(R"({"rawPath":"/hello"})").outcome, Outcome::kOk);
  stub->kill();
  stub = std::make_unique<Stub>(std::vector<std::string>{}, port);
  ASSERT_EQ(stub->port(), port);
  Result r = call(R"({"rawPath":"/again"})");
  EXPECT_EQ(r.outcome, Outcome::kOk) << r.detail;
  auto recs = stub->records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_TRUE(recs[0]["signature_ok"].get<bool>());
}

class LambdaInvokerTlsTest : public LambdaInvokerTest {
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

TEST_F(LambdaInvokerTlsTest, VerifiesTheServiceAndKeepsConnections) {
  if (std::system("command -v openssl >/dev/null") != 0) GTEST_SKIP() << "no openssl CLI";
  char tmpl[] = "/tmp/sluice-lambda-certs-XXXXXX";
  std::string certs = mkdtemp(tmpl);
  ASSERT_TRUE(makeCertificates(certs));
  Stub stub({"--tls-cert", certs + "/server.pem", "--tls-key", certs + "/server.key"});
  ASSERT_NE(stub.port(), 0);
  config::Function fn = function(stub.port(), true);
  fn.tls_ca = certs + "/ca.pem";
  invoker_ = makeLambdaInvoker(base_, fn);
  for (int i = 0; i < 2; ++i) {
    Result r = call(R"({"rawPath":"/hello"})");
    ASSERT_EQ(r.outcome, Outcome::kOk) << r.detail;
  }
  auto recs = stub.records();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_TRUE(recs[0]["signature_ok"].get<bool>());
  EXPECT_EQ(recs[0]["client_port"], recs[1]["client_port"]);
  invoker_.reset();

  // Signed by another CA: refused before anything is sent.
  fn.tls_ca = certs + "/other.pem";
  invoker_ = makeLambdaInvoker(base_, fn);
  Result r = call(R"({"rawPath":"/hello"})");
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_NE(r.detail.find("TLS"), std::string::npos) << r.detail;
  invoker_.reset();
  EXPECT_EQ(stub.records().size(), 2u);

  // Unless verification is off.
  fn.tls_verify = false;
  invoker_ = makeLambdaInvoker(base_, fn);
  EXPECT_EQ(call(R"({"rawPath":"/hello"})").outcome, Outcome::kOk);
  invoker_.reset();
  fs::remove_all(certs);
}

}  // namespace
}  // namespace sluice::function
