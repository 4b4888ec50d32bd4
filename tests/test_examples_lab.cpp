// The BN lab (examples/lab/): each study with --quick holds the invariants its claim rests on, and the
// outputs (results.json, the CSVs, report.html) follow their schema. The report's rendering in a browser is
// checked by tests/lab_report_in_browser.sh.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "report.h"
#include "studies.h"

using namespace lab;
using Catch::Contains;

namespace {

LabOptions quick() {
  LabOptions o;
  o.quick = true;
  o.show_progress = false;
  return o;
}

const TableRow& row(const StudyResult& r, const std::string& starts_with) {
  for (const TableRow& t : r.table)
    if (t.quantity.rfind(starts_with, 0) == 0) return t;
  FAIL("no table row starting with '" << starts_with << "' in " << r.study);
  throw;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string temp_dir(const std::string& name) {
  const std::string dir = "/tmp/normlab_lab_test_" + std::to_string(::getpid()) + "_" + name;
  std::filesystem::remove_all(dir);
  return dir;
}

void check_shape(const StudyResult& r) {
  CHECK_FALSE(r.claim.empty());
  CHECK_FALSE(r.source.empty());
  CHECK_FALSE(r.verdict.empty());
  CHECK_FALSE(r.series.empty());
  for (const Series& s : r.series) {
    INFO(r.study << "/" << s.id);
    CHECK_FALSE(s.lines.empty());
    for (const Line& l : s.lines) {
      CHECK_FALSE(l.y.empty());
      for (const auto& seed : l.y) CHECK(seed.size() == l.x.size());
    }
  }
}

}  // namespace

TEST_CASE("lab train-eval --quick: eval mode is batch-independent, the momentum changes only buffers",
          "[examples][lab]") {
  const StudyResult r = run_train_eval(quick());
  check_shape(r);
  CHECK(row(r, "max |logit(batch 1)").value <= 1e-4);
  CHECK(row(r, "predictions that differ").value == 0);
  CHECK(row(r, "weights bit-equal").value == 1);
  CHECK(row(r, "running statistics moved").value > 0);
}

TEST_CASE("lab bias-omission --quick: the bias gradient vanishes and removing the biases changes no output",
          "[examples][lab]") {
  const StudyResult r = run_bias_omission(quick());
  check_shape(r);
  CHECK(row(r, "max bias-gradient ratio, float32").value <= 1e-4);
  CHECK(row(r, "max bias-gradient ratio, float64").value <= 1e-12);
  CHECK(row(r, "output difference without the biases, eval").value <= 1e-5);
  CHECK(row(r, "output difference without the biases, train").value <= 1e-5);
  CHECK(row(r, "parameters without them").value ==
        row(r, "parameters with the biases").value - (32 + 64 + 128));
  CHECK(row(r, "max |‖b_t‖/‖b_0‖ − c_t|").value <= 1e-3);
}

TEST_CASE("lab scale-invariance --quick: outputs unchanged up to eps, the 1/c law, an orthogonal gradient",
          "[examples][lab]") {
  const StudyResult r = run_scale_invariance(quick());
  check_shape(r);
  for (const char* c : {"c = 0.1", "c = 10"}) {
    INFO(c);
    CHECK(row(r, std::string(c) + ": relative change").ok == true);
    CHECK(row(r, std::string(c) + ": ‖∂L/∂(cW)‖").ok == true);
  }
  CHECK(std::abs(row(r, "cos(").value) <= 1e-3);
  CHECK(row(r, "‖W‖ after / before").value > 1);
}

TEST_CASE("lab small-batch and bn-vs-none --quick produce every series", "[examples][lab]") {
  for (const StudyResult& r : {run_small_batch(quick()), run_bn_vs_none(quick())}) {
    INFO(r.study);
    check_shape(r);
  }
}

// Side by side, each run is on one thread with every kernel inside it: its numbers are those of the same run
// alone on one thread, whatever runs beside it.
TEST_CASE("lab small-batch: runs side by side give the numbers of the same runs one after the other",
          "[examples][lab]") {
  LabOptions one_by_one = quick();
  nl::set_num_threads(1);
  const StudyResult alone = run_small_batch(one_by_one);
  nl::set_num_threads(2);
  LabOptions side_by_side = quick();
  side_by_side.jobs = 2;
  const StudyResult together = run_small_batch(side_by_side);
  REQUIRE(alone.series.size() == together.series.size());
  for (size_t s = 0; s < alone.series.size(); ++s)
    for (size_t l = 0; l < alone.series[s].lines.size(); ++l) {
      INFO(alone.series[s].id << " / " << alone.series[s].lines[l].label);
      CHECK(alone.series[s].lines[l].y == together.series[s].lines[l].y);
    }
  CHECK(together.settings["runs_side_by_side"] == 2);
}

TEST_CASE("run_side_by_side runs every task once and rethrows a task's exception", "[examples][lab]") {
  for (int jobs : {1, 2}) {
    std::vector<int> ran(9, 0);
    run_side_by_side(9, jobs, [&](int64_t i) { ran[i] += 1; });
    CHECK(ran == std::vector<int>(9, 1));
    REQUIRE_THROWS_WITH(run_side_by_side(4, jobs,
                                         [](int64_t i) {
                                           if (i == 2) throw nl::Error("task 2 failed");
                                         }),
                        "task 2 failed");
  }
  REQUIRE_THROWS_WITH(run_side_by_side(1, 0, [](int64_t) {}), "run_side_by_side: jobs must be >= 1, got 0");
}

TEST_CASE("lab outputs: results.json follows the schema, one CSV and one chart per series, and reads back",
          "[examples][lab]") {
  const std::string dir = temp_dir("outputs");
  LabResults results;
  results.created = "2026-12-03 12:00:00";
  results.machine = nl::runtime_summary();
  results.command = "normlab-lab run bias-omission --quick";
  results.studies.push_back(run_bias_omission(quick()));
  write_outputs(dir, results);

  const nlohmann::json j = nlohmann::json::parse(slurp(dir + "/results.json"));
  CHECK(j.at("schema") == kResultsSchema);
  CHECK(j.at("version") == kResultsVersion);
  const auto& study = j.at("studies").at(0);
  for (const char* key : {"study", "claim", "source", "command", "settings", "series", "table", "verdict",
                          "wall_seconds", "machine"})
    CHECK(study.contains(key));
  CHECK(study.at("verdict").contains("supported"));

  const std::string html = slurp(dir + "/report.html");
  size_t canvases = 0;
  for (size_t at = html.find("<canvas"); at != std::string::npos; at = html.find("<canvas", at + 1))
    ++canvases;
  CHECK(canvases == results.studies[0].series.size());
  CHECK_THAT(html, Contains("Chart.js v"));  // inlined, no network
  CHECK(html.find("src=\"http") == std::string::npos);
  for (const Series& s : results.studies[0].series) {
    const std::string csv = slurp(dir + "/bias-omission-" + s.id + ".csv");
    CHECK(csv.rfind("line,seed,x,category,y\n", 0) == 0);
  }

  // `normlab-lab report DIR` reads results.json back: the same document.
  const LabResults back = read_results(dir);
  CHECK(nlohmann::json(back.studies).dump() == nlohmann::json(results.studies).dump());
  std::filesystem::remove_all(dir);
}

TEST_CASE("lab report: a missing, malformed or foreign results.json is a clear error",
          "[examples][lab][errors]") {
  const std::string dir = temp_dir("bad");
  std::filesystem::create_directories(dir);
  CHECK_THROWS_WITH(read_results(dir), Contains("results.json"));
  std::ofstream(dir + "/results.json") << "{ not json";
  CHECK_THROWS_WITH(read_results(dir), Contains("is not valid JSON"));
  std::ofstream(dir + "/results.json") << R"({"schema": "something-else", "version": 1})";
  CHECK_THROWS_WITH(read_results(dir), Contains("is not a normlab-lab results file"));
  std::ofstream(dir + "/results.json") << R"({"schema": "normlab-lab-results", "version": 99})";
  CHECK_THROWS_WITH(read_results(dir), Contains("has version 99"));
  std::ofstream(dir + "/results.json") << R"({"schema": "normlab-lab-results", "version": 1, "studies": []})";
  CHECK_THROWS_WITH(read_results(dir), Contains("does not follow the schema"));
  std::filesystem::remove_all(dir);
}
