// The Prometheus text rendering of the metrics registry.
#include <catch2/catch.hpp>

#include "actors/metrics.hpp"

using namespace petrel;

TEST_CASE("counters, gauges and histograms render in the text format") {
  metrics_registry r;
  r.get_counter("t_requests_total", "Requests", {{"code", "200"}}).inc(3);
  r.get_counter("t_requests_total", "Requests", {{"code", "500"}}).inc();
  r.get_gauge("t_depth", "Depth").set(-2);
  auto& h = r.get_histogram("t_latency_seconds", "Latency", {0.1, 1});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  auto text = r.render();
  CHECK_THAT(text, Catch::Contains("# TYPE t_requests_total counter\n"));
  CHECK_THAT(text, Catch::Contains("t_requests_total{code=\"200\"} 3\n"));
  CHECK_THAT(text, Catch::Contains("t_requests_total{code=\"500\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("# TYPE t_depth gauge\nt_depth -2\n"));
  CHECK_THAT(text, Catch::Contains("t_latency_seconds_bucket{le=\"0.1\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("t_latency_seconds_bucket{le=\"1\"} 2\n"));
  CHECK_THAT(text, Catch::Contains("t_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
  CHECK_THAT(text, Catch::Contains("t_latency_seconds_sum 5.55\n"));
  CHECK_THAT(text, Catch::Contains("t_latency_seconds_count 3\n"));
}

TEST_CASE("the same name and labels give the same series") {
  metrics_registry r;
  auto& a = r.get_counter("x_total", "X", {{"k", "v"}});
  auto& b = r.get_counter("x_total", "X", {{"k", "v"}});
  CHECK(&a == &b);
}

TEST_CASE("label values are escaped") {
  metrics_registry r;
  r.get_counter("e_total", "E", {{"v", "a\"b\\c\nd"}}).inc();
  CHECK_THAT(r.render(), Catch::Contains("e_total{v=\"a\\\"b\\\\c\\nd\"} 1"));
}

TEST_CASE("label limiter: the first values to reach the threshold keep their label, the rest are other") {
  label_limiter l(2, 3);
  CHECK(l.label("a.example") == "other");  // 1st sighting
  CHECK(l.label("a.example") == "other");
  CHECK(l.label("a.example") == "a.example");  // 3rd: admitted for good
  CHECK(l.label("b.example") == "other");
  CHECK(l.label("b.example") == "other");
  CHECK(l.label("b.example") == "b.example");
  for (int i = 0; i < 5; ++i) CHECK(l.label("c.example") == "other");  // no slot left
  CHECK(l.label("a.example") == "a.example");
}

TEST_CASE("several nodes' expositions merge into one: a node label, each family once") {
  metrics_registry a, b;
  a.get_counter("t_sent_total", "Sent", {{"domain", "x.example"}}).inc(2);
  a.get_gauge("t_waiting", "Waiting").set(5);
  auto& h = a.get_histogram("t_seconds", "Time", {1});
  h.observe(0.5);
  b.get_counter("t_sent_total", "Sent", {{"domain", "y.example"}}).inc(7);
  b.get_histogram("t_seconds", "Time", {1}).observe(3);
  auto merged = merge_expositions({{"n1", a.render()}, {"n2", b.render() + "t_plain 4\n"}});

  auto count = [&](const std::string& needle) {
    std::size_t n = 0;
    for (auto pos = merged.find(needle); pos != std::string::npos; pos = merged.find(needle, pos + 1)) ++n;
    return n;
  };
  CHECK(count("# TYPE t_sent_total counter\n") == 1);
  CHECK(count("# HELP t_sent_total Sent\n") == 1);
  CHECK_THAT(merged, Catch::Contains("t_sent_total{node=\"n1\",domain=\"x.example\"} 2\n"));
  CHECK_THAT(merged, Catch::Contains("t_sent_total{node=\"n2\",domain=\"y.example\"} 7\n"));
  CHECK_THAT(merged, Catch::Contains("t_waiting{node=\"n1\"} 5\n"));
  CHECK_THAT(merged, Catch::Contains("t_plain{node=\"n2\"} 4\n"));
  // A family's samples stay together: both nodes' histogram lines follow its one TYPE line.
  auto type = merged.find("# TYPE t_seconds histogram");
  auto n1 = merged.find("t_seconds_bucket{node=\"n1\"");
  auto n2 = merged.find("t_seconds_count{node=\"n2\"}");
  REQUIRE(type != std::string::npos);
  REQUIRE(n1 != std::string::npos);
  REQUIRE(n2 != std::string::npos);
  CHECK(type < n1);
  auto next_type = merged.find("# TYPE", type + 1);
  CHECK((next_type == std::string::npos || next_type > n2));
  // Node names are label values: quotes are escaped.
  CHECK_THAT(merge_expositions({{"a\"b", "x 1\n"}}), Catch::Contains("x{node=\"a\\\"b\"} 1\n"));
}
