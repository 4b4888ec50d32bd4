// normlab-lab: runs the BN lab's studies and writes their results and report.
//
//   normlab-lab list                                   each study with its claim
//   normlab-lab run STUDY... [--seeds N] [--quick] [--out DIR] [--threads N] [--jobs N] [--data DIR]
//   normlab-lab run all                                every study
//   normlab-lab report DIR [--study NAME]              rebuild DIR/report.html and the CSVs from results.json
//                                                      (with --study: DIR/report-NAME.html, that study alone)
#include <chrono>
#include <cstdio>
#include <ctime>

#include <CLI/CLI.hpp>

#include "core/file_util.h"
#include "report.h"
#include "studies.h"

namespace {

const std::vector<lab::Study>& all_studies() {
  static const std::vector<lab::Study> studies = {
      {"train-eval", "Forgetting model.eval(): train-mode BN depends on the test batch; eval mode does not.",
       lab::run_train_eval},
      {"bias-omission",
       "A bias right before BN is cancelled: zero gradient, and removing it changes nothing.",
       lab::run_bias_omission},
      {"scale-invariance",
       "BN makes the weights before it scale-invariant; their effective learning rate is η/‖W‖².",
       lab::run_scale_invariance},
      {"small-batch", "BN degrades at small batches; GroupNorm and LayerNorm-style normalization do not.",
       lab::run_small_batch},
      {"bn-vs-none", "BN trains faster and tolerates higher learning rates than no normalization.",
       lab::run_bn_vs_none},
  };
  return studies;
}

std::string now_string(const char* format) {
  const std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, format, std::localtime(&t));
  return buf;
}

std::string joined_command(int argc, char** argv) {
  std::string out = "normlab-lab";
  for (int i = 1; i < argc; ++i) out += std::string(" ") + argv[i];
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  nl::use_fastest_blas_kernel(argv);
  CLI::App app{"normlab-lab: studies that measure each claim about batch normalization"};
  app.require_subcommand(1);
  CLI::App* list = app.add_subcommand("list", "print each study with its claim");
  CLI::App* run = app.add_subcommand("run", "run studies and write results.json, CSVs and report.html");
  std::vector<std::string> names;
  lab::LabOptions options;
  std::string out_dir;
  run->add_option("studies", names, "study names, or 'all'")->required();
  run->add_option("--seeds", options.seeds, "seeds per study (default: each study's own)")
      ->check(CLI::NonNegativeNumber);
  run->add_flag("--quick", options.quick, "seconds per study on synthetic data (for tests)");
  run->add_option("--out", out_dir, "output folder (default lab-results/<date-time>)");
  run->add_option("--threads", options.threads, "threads")->check(CLI::Range(1, 1024))->capture_default_str();
  int jobs = 0;
  run->add_option("--jobs", jobs,
                  "independent training runs side by side, one thread each, where a study has them "
                  "(small-batch); at most --threads (default: --threads)")
      ->check(CLI::Range(1, 1024));
  run->add_option("--data", options.data_dir,
                  "Fashion-MNIST folder (default: NORMLAB_FASHION_MNIST, then Debian's)");
  run->add_flag("!--no-progress", options.show_progress, "no progress line");
  CLI::App* report = app.add_subcommand("report", "rebuild report.html and the CSVs from DIR/results.json");
  std::string report_dir, only_study;
  report->add_option("dir", report_dir, "a folder written by normlab-lab run")->required();
  report->add_option("--study", only_study,
                     "write DIR/report-STUDY.html with that study alone (for screenshots)");
  CLI11_PARSE(app, argc, argv);

  try {
    if (list->parsed()) {
      for (const lab::Study& s : all_studies()) std::printf("%-18s %s\n", s.name.c_str(), s.claim.c_str());
      return 0;
    }
    if (report->parsed()) {
      lab::LabResults results = lab::read_results(report_dir);
      if (only_study.empty()) {
        lab::write_outputs(report_dir, results);
        std::printf("normlab-lab: wrote %s/report.html\n", report_dir.c_str());
        return 0;
      }
      std::erase_if(results.studies, [&](const lab::StudyResult& s) { return s.study != only_study; });
      nl::check(!results.studies.empty(), "report: ", report_dir, "/results.json has no study '", only_study,
                "'");
      const std::string path = report_dir + "/report-" + only_study + ".html";
      nl::write_file_atomically(path, lab::render_report(results), "report");
      std::printf("normlab-lab: wrote %s\n", path.c_str());
      return 0;
    }
    std::vector<const lab::Study*> chosen;
    for (const std::string& name : names) {
      bool found = false;
      for (const lab::Study& s : all_studies())
        if (name == "all" || name == s.name) chosen.push_back(&s), found = true;
      if (!found) {
        std::string known;
        for (const lab::Study& s : all_studies()) known += " " + s.name;
        throw nl::Error("run: unknown study '" + name + "' (known:" + known + ", or all)");
      }
    }
    options.jobs = jobs > 0 ? jobs : options.threads;
    nl::check(options.jobs <= options.threads, "run: --jobs ", options.jobs, " is more than --threads ",
              options.threads, " (each job runs on one of the threads)");
    nl::set_num_threads(options.threads);
    if (out_dir.empty()) out_dir = "lab-results/" + now_string("%Y-%m-%d-%H%M%S");
    lab::LabResults results;
    results.created = now_string("%Y-%m-%d %H:%M:%S");
    results.machine = nl::runtime_summary();
    results.command = joined_command(argc, argv);
    std::printf("normlab-lab: %zu %s, results in %s\n%s\n", chosen.size(),
                chosen.size() == 1 ? "study" : "studies", out_dir.c_str(), results.machine.c_str());
    for (const lab::Study* s : chosen) {
      options.command =
          "normlab-lab run " + s->name + (options.quick ? " --quick" : "") +
          (options.seeds > 0 ? " --seeds " + std::to_string(options.seeds) : "") +
          (options.threads != lab::LabOptions{}.threads ? " --threads " + std::to_string(options.threads)
                                                        : "") +
          (options.jobs != options.threads ? " --jobs " + std::to_string(options.jobs) : "");
      const auto start = std::chrono::steady_clock::now();
      lab::StudyResult r = s->run(options);
      r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      r.command = options.command;
      r.machine = results.machine;
      std::printf("%s", lab::terminal_summary(r).c_str());
      std::fflush(stdout);
      results.studies.push_back(std::move(r));
      lab::write_outputs(out_dir, results);  // after every study, so a long run leaves what it finished
    }
    std::printf("normlab-lab: wrote %s/results.json and %s/report.html\n", out_dir.c_str(), out_dir.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "normlab-lab: %s\n", e.what());
    return 1;
  }
}
