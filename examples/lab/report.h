// The lab's outputs, in one folder:
//   results.json   every study's StudyResult under one versioned schema (kResultsSchema, kResultsVersion):
//                  {"schema", "version", "created", "machine", "command", "studies": [StudyResult...]}
//   <study>-<series>.csv   one per series, long format: line,seed,x,category,y
//   report.html    self-contained (Chart.js from Debian's libjs-chart.js inlined, the results embedded):
//                  per study the claim and its source, the command, one chart per series, the table and the
//                  verdict. It opens from disk with no server and no network.
// `normlab-lab report DIR` rebuilds the CSVs and report.html from results.json alone.
#pragma once

#include <string>
#include <vector>

#include "lab.h"

namespace lab {

inline constexpr const char* kResultsSchema = "normlab-lab-results";
inline constexpr int kResultsVersion = 1;
// Where Debian's libjs-chart.js puts the browser build.
inline constexpr const char* kChartJsPath = "/usr/share/javascript/chart.js/chart.min.js";

struct LabResults {
  std::string created;  // local date and time, "2026-12-03 17:50:12"
  std::string machine;  // nl::runtime_summary()
  std::string command;  // the normlab-lab command line
  std::vector<StudyResult> studies;
};

// Writes results.json, the CSVs and report.html into `dir` (created if needed).
void write_outputs(const std::string& dir, const LabResults& results);
// Reads results.json from `dir`; an error naming the file when it is missing, not JSON, or of another schema
// or version.
LabResults read_results(const std::string& dir);
// The self-contained HTML page.
std::string render_report(const LabResults& results);
// The compact terminal summary of one study: claim, table, verdict.
std::string terminal_summary(const StudyResult& result);

}  // namespace lab
