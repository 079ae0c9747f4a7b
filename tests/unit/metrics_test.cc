// Metrics storage and exposition: counters summed over workers, cumulative histogram
// buckets, series kept across reloads, and filter families merged into one block.
#include "gateway/admin/metrics.h"

#include <gtest/gtest.h>

#include <string>

#include "filters/filter.h"

namespace sluice {
namespace {

std::shared_ptr<config::Config> twoRoutes(std::string a = "a", std::string b = "b") {
  auto c = std::make_shared<config::Config>();
  c->routes.resize(2);
  c->routes[0].name = a;
  c->routes[1].name = b;
  config::Listener l;
  l.name = "public";
  c->listeners.push_back(l);
  config::Service s;
  s.name = "users";
  s.endpoints.resize(2);
  s.endpoints[0].text = "127.0.0.1:1";
  s.endpoints[1].text = "127.0.0.1:2";
  c->services["users"] = s;
  return c;
}

bool has(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.starts_with(line + "\n");
}

TEST(Metrics, MethodsOutsideTheFixedSetAreOther) {
  EXPECT_EQ(metrics::kMethods[metrics::methodIndex("GET")], "GET");
  EXPECT_EQ(metrics::kMethods[metrics::methodIndex("PATCH")], "PATCH");
  EXPECT_EQ(metrics::kMethods[metrics::methodIndex("BREW")], "OTHER");
  EXPECT_EQ(metrics::kMethods[metrics::methodIndex("get")], "OTHER");
}

TEST(Metrics, CountersAreSummedOverWorkers) {
  MetricsRegistry reg(2);
  auto cfg = twoRoutes();
  SnapshotMetrics w0 = reg.bind(*cfg, 0);
  SnapshotMetrics w1 = reg.bind(*cfg, 1);
  w0.routes[0]->record("GET", 200, 300);
  w1.routes[0]->record("GET", 204, 700);
  w1.routes[0]->record("POST", 503, 2'000'000);
  w0.no_route->record("GET", 404, 10);
  w1.services["users"][1]->error(metrics::UpstreamError::kTimeout);
  w0.listeners[0]->active.add(3);
  w1.listeners[0]->active.add(2);
  w1.listeners[0]->active.add(-1);
  reg.worker(0).streams_active.add(2);
  std::string text = reg.render(*cfg);
  EXPECT_TRUE(has(text, R"(sluice_requests_total{route="a",method="GET",status_class="2xx"} 2)"))
      << text;
  EXPECT_TRUE(has(text, R"(sluice_requests_total{route="a",method="POST",status_class="5xx"} 1)"));
  EXPECT_TRUE(
      has(text, R"x(sluice_requests_total{route="(none)",method="GET",status_class="4xx"} 1)x"));
  // No zero-valued request series.
  EXPECT_EQ(text.find(R"(sluice_requests_total{route="b")"), std::string::npos);
  // Histogram: cumulative buckets, sum in seconds, count.
  EXPECT_TRUE(has(text, R"(sluice_request_duration_seconds_bucket{route="a",le="0.0005"} 1)"));
  EXPECT_TRUE(has(text, R"(sluice_request_duration_seconds_bucket{route="a",le="0.001"} 2)"));
  EXPECT_TRUE(has(text, R"(sluice_request_duration_seconds_bucket{route="a",le="1"} 2)"));
  EXPECT_TRUE(has(text, R"(sluice_request_duration_seconds_bucket{route="a",le="2.5"} 3)"));
  EXPECT_TRUE(has(text, R"(sluice_request_duration_seconds_bucket{route="a",le="+Inf"} 3)"));
  EXPECT_TRUE(has(text, R"(sluice_request_duration_seconds_sum{route="a"} 2.001000)"));
  EXPECT_TRUE(has(text, R"(sluice_request_duration_seconds_count{route="a"} 3)"));
  EXPECT_TRUE(has(text, R"(sluice_request_duration_seconds_count{route="b"} 0)"));
  EXPECT_TRUE(has(
      text,
      R"(sluice_upstream_errors_total{service="users",endpoint="127.0.0.1:2",kind="timeout"} 1)"));
  EXPECT_TRUE(has(
      text,
      R"(sluice_upstream_errors_total{service="users",endpoint="127.0.0.1:1",kind="timeout"} 0)"));
  EXPECT_TRUE(has(text, R"(sluice_connections_active{listener="public"} 4)"));
  EXPECT_TRUE(has(text, "sluice_streams_active 2"));
  EXPECT_TRUE(has(text, "sluice_workers 2"));
}

TEST(Metrics, SeriesSurviveReloadsByName) {
  MetricsRegistry reg(1);
  auto first = twoRoutes("a", "b");
  reg.bind(*first, 0).routes[1]->record("GET", 200, 1);
  // The next config drops "a", keeps "b" (at another index) and adds "c".
  auto second = twoRoutes("b", "c");
  SnapshotMetrics m = reg.bind(*second, 0);
  m.routes[0]->record("GET", 200, 1);
  reg.reloadResult(true, 2);
  reg.reloadResult(false, 2);
  std::string text = reg.render(*second);
  EXPECT_TRUE(has(text, R"(sluice_requests_total{route="b",method="GET",status_class="2xx"} 2)"))
      << text;
  EXPECT_TRUE(has(text, R"(sluice_request_duration_seconds_count{route="a"} 0)"));
  EXPECT_TRUE(has(text, R"(sluice_request_duration_seconds_count{route="c"} 0)"));
  EXPECT_TRUE(has(text, R"(sluice_config_reloads_total{result="success"} 1)"));
  EXPECT_TRUE(has(text, R"(sluice_config_reloads_total{result="failure"} 1)"));
  EXPECT_TRUE(has(text, "sluice_config_last_reload_success 0"));
  EXPECT_TRUE(has(text, "sluice_config_generation 2"));
}

class CountingFilter : public FilterFactory {
 public:
  explicit CountingFilter(std::string route) : route_(std::move(route)) {}
  Filter* create(Exchange&) const override { return nullptr; }
  void appendMetrics(std::string& out) const override {
    out += "# HELP sluice_test_hits_total Hits.\n# TYPE sluice_test_hits_total counter\n";
    out += "sluice_test_hits_total{route=\"" + route_ + "\"} 1\n";
    out += "# HELP sluice_test_seconds Time.\n# TYPE sluice_test_seconds histogram\n";
    out += "sluice_test_seconds_bucket{route=\"" + route_ + "\",le=\"+Inf\"} 1\n";
    out += "sluice_test_seconds_sum{route=\"" + route_ + "\"} 0.5\n";
    out += "sluice_test_seconds_count{route=\"" + route_ + "\"} 1\n";
  }

 private:
  std::string route_;
};

TEST(Metrics, FilterFamiliesAreMergedAndSharedFactoriesAppearOnce) {
  MetricsRegistry reg(1);
  auto cfg = twoRoutes();
  auto global = std::make_shared<CountingFilter>("*");
  cfg->global_chain.push_back(global);
  cfg->routes[0].chain = {global, std::make_shared<CountingFilter>("a")};
  cfg->routes[1].chain = {global, std::make_shared<CountingFilter>("b")};
  std::string text = reg.render(*cfg);
  size_t help = text.find("# HELP sluice_test_hits_total");
  ASSERT_NE(help, std::string::npos) << text;
  EXPECT_EQ(text.find("# HELP sluice_test_hits_total", help + 1), std::string::npos) << text;
  std::string block =
      "# HELP sluice_test_hits_total Hits.\n# TYPE sluice_test_hits_total counter\n"
      "sluice_test_hits_total{route=\"*\"} 1\nsluice_test_hits_total{route=\"a\"} 1\n"
      "sluice_test_hits_total{route=\"b\"} 1\n";
  EXPECT_NE(text.find(block), std::string::npos) << text;
  std::string hist =
      "# HELP sluice_test_seconds Time.\n# TYPE sluice_test_seconds histogram\n"
      "sluice_test_seconds_bucket{route=\"*\",le=\"+Inf\"} 1\n"
      "sluice_test_seconds_sum{route=\"*\"} 0.5\nsluice_test_seconds_count{route=\"*\"} 1\n"
      "sluice_test_seconds_bucket{route=\"a\",le=\"+Inf\"} 1\n";
  EXPECT_NE(text.find(hist), std::string::npos) << text;
}

}  // namespace
}  // namespace sluice
