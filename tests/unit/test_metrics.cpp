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
