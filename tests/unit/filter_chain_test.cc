// The filter chain runner (Exchange) driven directly: a fake codec stream on one side,
// a static-response backend on the other, and scripted filters registered under test-only
// names. Checks order, stop/resume, local replies from either phase, completion before a
// filter returns and after the client went away, and that onDone runs exactly once for
// every filter created.
#include <event2/buffer.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/yaml_reader.h"
#include "filters/exchange.h"
#include "filters/filter.h"
#include "gateway/admin/metrics.h"
#include "gateway/server/worker.h"

namespace sluice {
namespace {

using config::detail::Field;
using config::detail::Fields;
using config::detail::Schema;

// What every test filter did, in order: "a:req", "b:resp 200", "c:done", ...
std::vector<std::string> g_log;
std::map<std::string, Exchange*> g_stopped;  // filter name -> the exchange it stopped
int g_created = 0;
int g_destroyed = 0;
std::map<std::string, int> g_done;  // per filter name

// What a test filter does in a phase.
//   continue | stop | resume_inline (resume() then return kStop) |
//   reply (reply() then return kStop) | reply_continue (reply() then return kContinue)
struct Script {
  std::string request = "continue";
  std::string response = "continue";
  uint16_t status = 403;
};

class ScriptedFilter final : public Filter {
 public:
  ScriptedFilter(std::string name, const Script& script) : name_(std::move(name)), s_(script) {}

  FilterStatus onRequest(Exchange& x) override {
    g_log.push_back(name_ + ":req");
    return act(x, s_.request);
  }
  FilterStatus onResponse(Exchange& x) override {
    g_log.push_back(name_ + ":resp " + std::to_string(x.status()));
    x.responseHeaders().add("x-seen-by", name_);
    return act(x, s_.response);
  }
  void onCancel(Exchange&) override { g_log.push_back(name_ + ":cancel"); }
  void onDone(const Exchange& x) override {
    g_log.push_back(name_ + ":done");
    ++g_done[name_];
  }

 private:
  FilterStatus act(Exchange& x, const std::string& what) {
    if (what == "stop") {
      g_stopped[name_] = &x;
      return FilterStatus::kStop;
    }
    if (what == "resume_inline") {
      x.resume();
      return FilterStatus::kStop;
    }
    if (what == "reply" || what == "reply_continue") {
      x.reply(s_.status, "from " + name_);
      return what == "reply" ? FilterStatus::kStop : FilterStatus::kContinue;
    }
    return FilterStatus::kContinue;
  }

  std::string name_;
  Script s_;
};

class ScriptedFactory final : public FilterFactory {
 public:
  ScriptedFactory(std::string name, Script script)
      : name_(std::move(name)), script_(std::move(script)) {}
  Filter* create(Exchange&) const override {
    ++g_created;
    return std::make_unique<ScriptedFilter>(name_, script_).release();
  }
  void destroy(Filter* filter) const override {
    ++g_destroyed;
    std::unique_ptr<Filter> owned(filter);
  }

 private:
  std::string name_;
  Script script_;
};

std::shared_ptr<const FilterFactory> parseScripted(FilterParseContext& ctx) {
  static const Schema kSchema{{"request", "response", "status"}};
  Fields fields;
  if (!ctx.reader.map(ctx.field, kSchema, fields)) return nullptr;
  Script script;
  if (const Field* f = fields.get("request")) script.request = ctx.reader.string(*f).value_or("");
  if (const Field* f = fields.get("response")) {
    script.response = ctx.reader.string(*f).value_or("");
  }
  if (const Field* f = fields.get("status")) {
    int64_t status = 0;
    if (ctx.reader.integer(*f, 200, 599, status)) script.status = static_cast<uint16_t>(status);
  }
  return std::make_shared<ScriptedFactory>(ctx.name, script);
}

const bool registered = registerFilter("t_a", parseScripted) &&
                        registerFilter("t_b", parseScripted) &&
                        registerFilter("t_c", parseScripted);

// The codec side of one request; like the real one, sendEnd() ends the exchange.
class FakeStream final : public Downstream {
 public:
  FakeStream(Worker& worker, std::string method, std::string path)
      : worker_(worker), method_(std::move(method)), path_(std::move(path)) {
    head_.method = method_;
    head_.target = path_;
    head_.path = path_;
    head_.host = "example.test";
  }

  void begin(const std::shared_ptr<const config::Config>& config) { x.begin(*this, config, 40); }

  const http::RequestHead& request() const override { return head_; }
  std::string_view path() const override { return head_.path; }
  std::string_view clientIp() const override { return "127.0.0.1"; }
  std::string_view scheme() const override { return "http"; }
  Worker& worker() override { return worker_; }
  bool hasBody() const override { return false; }
  size_t readBody(evbuffer*, size_t) override { return 0; }
  bool bodyComplete() const override { return true; }
  bool bodyFailed() const override { return false; }
  int64_t bodyLength() const override { return 0; }
  void sendHead(const ResponseStart& start) override {
    ++heads;
    status = start.status;
    for (size_t i = 0; i < start.header_count; ++i) {
      headers.emplace_back(start.headers[i].name, start.headers[i].value);
    }
  }
  void sendBody(evbuffer* data) override {
    size_t n = evbuffer_get_length(data);
    body.resize(body.size() + n);
    evbuffer_remove(data, body.data() + body.size() - n, n);
  }
  void sendEnd() override {
    ended = true;
    x.end(true);
  }
  void flush() override {}
  void sendLocalReply(uint16_t, std::string_view) override { ADD_FAILURE() << "codec reply"; }
  bool headSent() const override { return heads > 0; }
  size_t pendingResponseBytes() const override { return 0; }
  void abort() override { ADD_FAILURE() << "abort"; }

  std::string header(std::string_view name) const {
    std::string all;
    for (const auto& [n, v] : headers) {
      if (http::iequals(n, name)) all += (all.empty() ? "" : ",") + v;
    }
    return all;
  }

  Exchange x;
  int heads = 0;
  uint16_t status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool ended = false;

 private:
  Worker& worker_;
  std::string method_;
  std::string path_;
  http::RequestHead head_;
};

template <typename... T>
std::vector<std::string> seq(T... items) {
  return {std::string(items)...};
}

class FilterChain : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(registered);
    g_log.clear();
    g_stopped.clear();
    g_done.clear();
    g_created = g_destroyed = 0;
  }

  void TearDown() override {
    // Every filter created was given onDone once and destroyed once.
    EXPECT_EQ(g_created, g_destroyed);
    int done = 0;
    for (const auto& [name, n] : g_done) {
      EXPECT_EQ(n, runs_) << name << " got onDone " << n << " times in " << runs_ << " requests";
      done += n;
    }
    EXPECT_EQ(done, g_created);
    worker_.reset();
  }

  // `filters` is the global list; `route_filters` the list of route /r.
  void load(const std::string& filters, const std::string& route_filters) {
    std::string indented;  // the route's list sits 4 columns further in
    for (size_t start = 0; start < route_filters.size();) {
      size_t end = route_filters.find('\n', start);
      if (end == std::string::npos) end = route_filters.size() - 1;
      indented += "    " + route_filters.substr(start, end + 1 - start);
      start = end + 1;
    }
    std::string yaml =
        "listeners: [{name: l, address: 127.0.0.1:0}]\n"
        "filters:\n" +
        filters +
        "routes:\n"
        "  - name: r\n"
        "    match: {path: /r}\n"
        "    response: {status: 200, body: backend}\n"
        "    filters:\n" +
        indented;
    config::LoadResult result = config::loadString(yaml, "test.yaml");
    for (const config::Error& e : result.errors) ADD_FAILURE() << e.str();
    ASSERT_TRUE(result.config);
    // No listener: the worker never accepts, it only hosts the exchanges.
    auto config = std::make_shared<config::Config>(*result.config);
    config->listeners.clear();
    Worker::Plan plan;
    plan.config = config;
    plan.metrics = metrics_.bind(*config, 0);
    worker_ = std::make_unique<Worker>(0, metrics_.worker(0), std::move(plan));
  }

  std::unique_ptr<FakeStream> request(std::string path = "/r") {
    ++runs_;
    auto s = std::make_unique<FakeStream>(*worker_, "GET", std::move(path));
    s->begin(worker_->configPtr());
    return s;
  }

  MetricsRegistry metrics_{1};
  std::unique_ptr<Worker> worker_;
  int runs_ = 0;  // requests that reached every filter created
};

TEST_F(FilterChain, RequestInOrderResponseInReverseDoneForAll) {
  load("  - t_a: {}\n", "  - t_b: {}\n  - t_c: {}\n");
  auto s = request();
  EXPECT_TRUE(s->ended);
  EXPECT_EQ(s->status, 200);
  EXPECT_EQ(s->body, "backend");
  EXPECT_EQ(s->header("x-seen-by"), "t_c,t_b,t_a");
  EXPECT_EQ(g_log, seq("t_a:req", "t_b:req", "t_c:req", "t_c:resp 200", "t_b:resp 200",
                       "t_a:resp 200", "t_a:done", "t_b:done", "t_c:done"));
}

TEST_F(FilterChain, StopThenResumeLater) {
  load("  - t_a: {}\n", "  - t_b: {request: stop}\n  - t_c: {}\n");
  auto s = request();
  EXPECT_EQ(g_log, seq("t_a:req", "t_b:req"));
  EXPECT_EQ(s->heads, 0);
  ASSERT_EQ(g_stopped.count("t_b"), 1u);
  g_stopped["t_b"]->resume();
  EXPECT_TRUE(s->ended);
  EXPECT_EQ(s->status, 200);
  EXPECT_EQ(g_log, seq("t_a:req", "t_b:req", "t_c:req", "t_c:resp 200", "t_b:resp 200",
                       "t_a:resp 200", "t_a:done", "t_b:done", "t_c:done"));
}

TEST_F(FilterChain, ResumeBeforeOnRequestReturns) {
  load("  - t_a: {request: resume_inline}\n", "  - t_b: {request: resume_inline}\n");
  auto s = request();
  EXPECT_TRUE(s->ended);
  EXPECT_EQ(s->status, 200);
  EXPECT_EQ(g_log,
            seq("t_a:req", "t_b:req", "t_b:resp 200", "t_a:resp 200", "t_a:done", "t_b:done"));
}

TEST_F(FilterChain, ResumeTwiceOrWithoutStopIsIgnored) {
  load("  - t_a: {}\n", "  - t_b: {request: stop}\n");
  auto s = request();
  Exchange* x = g_stopped["t_b"];
  x->resume();
  x->resume();
  EXPECT_EQ(s->heads, 1);
  EXPECT_EQ(g_log,
            seq("t_a:req", "t_b:req", "t_b:resp 200", "t_a:resp 200", "t_a:done", "t_b:done"));
}

TEST_F(FilterChain, ReplyFromTheRequestPhase) {
  load("  - t_a: {}\n", "  - t_b: {request: reply, status: 401}\n  - t_c: {}\n");
  auto s = request();
  EXPECT_TRUE(s->ended);
  EXPECT_EQ(s->status, 401);
  EXPECT_EQ(s->body, R"({"message":"from t_b"})");
  EXPECT_EQ(s->header("content-type"), "application/json");
  // The backend never ran, t_c never saw the request (but hears of its end, like every
  // filter: access logs log refusals), the replier does not see its reply.
  EXPECT_EQ(g_log, seq("t_a:req", "t_b:req", "t_a:resp 401", "t_a:done", "t_b:done", "t_c:done"));
  EXPECT_EQ(g_done.count("t_c"), 1u);
}

TEST_F(FilterChain, ReplyThenContinueStillReplies) {
  load("  - t_a: {request: reply_continue, status: 429}\n", "  - t_b: {}\n");
  auto s = request();
  EXPECT_EQ(s->status, 429);
  EXPECT_EQ(g_log, seq("t_a:req", "t_a:done", "t_b:done"));
}

TEST_F(FilterChain, ReplyLaterAfterStop) {
  load("  - t_a: {}\n", "  - t_b: {request: stop}\n  - t_c: {}\n");
  auto s = request();
  g_stopped["t_b"]->reply(503, "later");
  EXPECT_EQ(s->status, 503);
  EXPECT_EQ(s->body, R"({"message":"later"})");
  EXPECT_EQ(g_log, seq("t_a:req", "t_b:req", "t_a:resp 503", "t_a:done", "t_b:done", "t_c:done"));
}

TEST_F(FilterChain, ReplyFromTheResponsePhase) {
  load("  - t_a: {}\n", "  - t_b: {}\n  - t_c: {response: reply, status: 502}\n");
  auto s = request();
  EXPECT_EQ(s->status, 502);
  EXPECT_EQ(s->body, R"({"message":"from t_c"})");
  // The reply replaces the backend's response (and the header t_c added to it); the
  // filters below t_c see it.
  EXPECT_EQ(s->header("x-seen-by"), "t_b,t_a");
  EXPECT_EQ(g_log, seq("t_a:req", "t_b:req", "t_c:req", "t_c:resp 200", "t_b:resp 502",
                       "t_a:resp 502", "t_a:done", "t_b:done", "t_c:done"));
}

TEST_F(FilterChain, StopInTheResponsePhaseThenResume) {
  load("  - t_a: {}\n", "  - t_b: {response: stop}\n");
  auto s = request();
  EXPECT_EQ(s->heads, 0);  // held until every response filter continued
  EXPECT_EQ(g_log, seq("t_a:req", "t_b:req", "t_b:resp 200"));
  g_stopped["t_b"]->resume();
  EXPECT_TRUE(s->ended);
  EXPECT_EQ(s->body, "backend");
  EXPECT_EQ(g_log,
            seq("t_a:req", "t_b:req", "t_b:resp 200", "t_a:resp 200", "t_a:done", "t_b:done"));
}

TEST_F(FilterChain, ReplyAfterStopInTheResponsePhase) {
  load("  - t_a: {}\n", "  - t_b: {response: stop}\n");
  auto s = request();
  g_stopped["t_b"]->reply(500, "changed my mind");
  EXPECT_EQ(s->status, 500);
  EXPECT_EQ(s->body, R"({"message":"changed my mind"})");
  EXPECT_EQ(g_log,
            seq("t_a:req", "t_b:req", "t_b:resp 200", "t_a:resp 500", "t_a:done", "t_b:done"));
}

TEST_F(FilterChain, ClientGoneWhileStoppedInTheRequestPhase) {
  load("  - t_a: {}\n", "  - t_b: {request: stop}\n  - t_c: {}\n");
  auto s = request();
  Exchange* x = g_stopped["t_b"];
  x->end(false);  // what the codec does when the client disconnects
  EXPECT_TRUE(x->cancelled());
  EXPECT_EQ(x->status(), 499);  // what logs record for a client that went away
  EXPECT_EQ(g_log, seq("t_a:req", "t_b:req", "t_b:cancel", "t_a:done", "t_b:done", "t_c:done"));
  // Completion after the client went away is ignored.
  x->resume();
  x->reply(500, "too late");
  x->end(false);
  EXPECT_EQ(s->heads, 0);
  EXPECT_EQ(g_log.size(), 6u);
}

TEST_F(FilterChain, ClientGoneWhileStoppedInTheResponsePhase) {
  load("  - t_a: {}\n", "  - t_b: {}\n  - t_c: {response: stop}\n");
  auto s = request();
  Exchange* x = g_stopped["t_c"];
  x->end(false);
  x->resume();
  EXPECT_EQ(s->heads, 0);
  EXPECT_EQ(g_log, seq("t_a:req", "t_b:req", "t_c:req", "t_c:resp 200", "t_c:cancel", "t_a:done",
                       "t_b:done", "t_c:done"));
}

TEST_F(FilterChain, AStoppedFilterStillSeesTheRequest) {
  load("  - t_a: {}\n", "  - t_b: {request: stop}\n");
  auto s = request();
  Exchange& x = *g_stopped["t_b"];
  EXPECT_EQ(x.routeName(), "r");
  EXPECT_EQ(x.method(), "GET");
  x.resume();
  EXPECT_TRUE(s->ended);
  EXPECT_FALSE(x.active());  // ended and released
}

TEST_F(FilterChain, GlobalFiltersRunWhenNoRouteMatches) {
  load("  - t_a: {}\n", "  - t_b: {}\n");
  auto s = request("/nowhere");
  EXPECT_EQ(s->status, 404);
  EXPECT_EQ(s->body, R"({"message":"Not Found"})");
  EXPECT_EQ(g_log, seq("t_a:req", "t_a:resp 404", "t_a:done"));
}

TEST_F(FilterChain, AGlobalFilterCanStopBeforeTheRefusal) {
  load("  - t_a: {request: stop}\n", "  - t_b: {}\n");
  auto s = request("/nowhere");
  EXPECT_EQ(s->heads, 0);
  g_stopped["t_a"]->resume();
  EXPECT_EQ(s->status, 404);
  EXPECT_EQ(g_log, seq("t_a:req", "t_a:resp 404", "t_a:done"));
}

TEST_F(FilterChain, RouteOverridesAndDisablesGlobalFilters) {
  load("  - t_a: {request: reply, status: 418}\n  - t_b: {}\n",
       "  - t_a: {}\n  - t_b: {disabled: true}\n  - t_c: {}\n");
  auto s = request();
  EXPECT_EQ(s->status, 200);  // t_a's route settings replaced the global ones
  EXPECT_EQ(g_log,
            seq("t_a:req", "t_c:req", "t_c:resp 200", "t_a:resp 200", "t_a:done", "t_c:done"));
}

TEST_F(FilterChain, ExchangeIsReusedForTheNextRequest) {
  load("  - t_a: {}\n", "  - t_b: {request: stop}\n");
  auto s = request();
  Exchange* first = g_stopped["t_b"];
  first->end(false);
  // A later request on the same Exchange object: the old stop must not leak into it.
  g_log.clear();
  ++runs_;
  s->ended = false;
  s->begin(worker_->configPtr());
  EXPECT_EQ(g_log, seq("t_a:req", "t_b:req"));
  g_stopped["t_b"]->resume();
  EXPECT_TRUE(s->ended);
  EXPECT_EQ(s->status, 200);
}

}  // namespace
}  // namespace sluice
