#include "report.h"

#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/file_util.h"

namespace lab {

namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string csv_number(double v) {
  if (std::isnan(v)) return "";
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

std::string series_csv(const Series& s) {
  std::string out = "line,seed,x,category,y\n";
  for (const Line& line : s.lines)
    for (size_t seed = 0; seed < line.y.size(); ++seed)
      for (size_t i = 0; i < line.x.size(); ++i) {
        const std::string category = i < s.categories.size() ? s.categories[i] : "";
        out += csv_field(line.label) + "," + std::to_string(seed) + "," + csv_number(line.x[i]) + "," +
               csv_field(category) + "," + csv_number(i < line.y[seed].size() ? line.y[seed][i] : NAN) + "\n";
      }
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// JSON inside a <script> element: "</" would end the element.
std::string script_safe(std::string json) {
  for (size_t at = json.find("</"); at != std::string::npos; at = json.find("</", at + 2))
    json.replace(at, 2, "<\\/");
  return json;
}

nlohmann::json to_document(const LabResults& r) {
  return {{"schema", kResultsSchema}, {"version", kResultsVersion}, {"created", r.created},
          {"machine", r.machine},     {"command", r.command},       {"studies", r.studies}};
}

// The page's stylesheet and the script that draws every series (mean line; with several seeds a band of
// ± one standard deviation). Once all charts are drawn, the body carries data-charts-expected and
// data-charts-drawn (charts whose canvas has painted pixels), which the browser test reads.
constexpr const char* kStyle = R"(
body { font: 15px/1.5 system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2.2em; border-bottom: 2px solid #ddd; }
.meta { color: #666; font-size: 13px; }
blockquote { margin: 0.5em 0; padding: 0.4em 1em; border-left: 4px solid #4c78a8; background: #f4f7fb; }
code { background: #f2f2f2; padding: 0.1em 0.3em; border-radius: 3px; font-size: 13px; }
.verdict { padding: 0.5em 1em; border-radius: 4px; margin: 1em 0; }
.supported { background: #e6f4ea; border: 1px solid #7bc47f; }
.unsupported { background: #fdecea; border: 1px solid #e57373; }
figure { margin: 1.2em 0; } figcaption { color: #555; font-size: 13px; }
.chart { position: relative; height: 320px; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
td, th { border-bottom: 1px solid #ddd; padding: 0.25em 0.8em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #2e7d32; } .fail { color: #c62828; }
nav a { margin-right: 1em; }
)";

constexpr const char* kRenderScript = R"(
(function () {
  const results = JSON.parse(document.getElementById('lab-results').textContent);
  const palette = ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#b279a2', '#ff9da6', '#9d755d'];
  const mean = v => { const f = v.filter(Number.isFinite); return f.length ? f.reduce((a, b) => a + b, 0) / f.length : NaN; };
  const sd = v => { const f = v.filter(Number.isFinite); if (f.length < 2) return 0; const m = mean(f);
                    return Math.sqrt(f.reduce((a, b) => a + (b - m) * (b - m), 0) / (f.length - 1)); };
  const column = (line, i) => line.y_per_seed.map(seed => seed[i] === null ? NaN : seed[i]);
  const charts = [];
  for (const study of results.studies) {
    for (const series of study.series) {
      const canvas = document.getElementById('chart-' + study.study + '-' + series.id);
      const datasets = [];
      series.lines.forEach((line, k) => {
        const color = palette[k % palette.length];
        const stats = line.x.map((x, i) => ({ x: x, m: mean(column(line, i)), s: sd(column(line, i)) }));
        if (series.categories.length) {
          datasets.push({ label: line.label, backgroundColor: color,
                          data: stats.map(p => Number.isFinite(p.m) ? p.m : null),
                          spread: stats.map(p => p.s) });
          return;
        }
        const points = stats.filter(p => Number.isFinite(p.m));
        datasets.push({ label: line.label, borderColor: color, backgroundColor: color, pointRadius: points.length > 60 ? 0 : 2,
                        borderWidth: 1.5, data: points.map(p => ({ x: p.x, y: p.m })) });
        if (line.y_per_seed.length > 1) {
          const band = { borderWidth: 0, pointRadius: 0, backgroundColor: color + '33', isBand: true };
          datasets.push(Object.assign({ label: line.label + ' +1 sd', data: points.map(p => ({ x: p.x, y: p.m + p.s })), fill: false }, band));
          datasets.push(Object.assign({ label: line.label + ' -1 sd', data: points.map(p => ({ x: p.x, y: p.m - p.s })), fill: '-1' }, band));
        }
      });
      // Log axes label the powers of ten only, as 1e-8 (Chart.js would print 1.0000000000E-8).
      const logTick = v => { const e = Math.log10(v); return Math.abs(e - Math.round(e)) < 1e-9 ?
                             (Math.abs(e) >= 4 ? '1e' + Math.round(e) : String(+v.toPrecision(6))) : ''; };
      const axis = (label, log) => ({ type: log ? 'logarithmic' : 'linear', title: { display: true, text: label },
                                      ticks: log ? { callback: logTick } : {} });
      const config = series.categories.length ? {
        type: 'bar',
        data: { labels: series.categories, datasets: datasets },
        options: { animation: false, maintainAspectRatio: false,
                   scales: { y: axis(series.y_label, series.log_y) },
                   plugins: { tooltip: { callbacks: { label: c => c.dataset.label + ': ' + c.formattedValue +
                     (c.dataset.spread[c.dataIndex] ? ' ± ' + c.dataset.spread[c.dataIndex].toPrecision(2) : '') } } } }
      } : {
        type: 'line',
        data: { datasets: datasets },
        options: { animation: false, maintainAspectRatio: false, parsing: false, spanGaps: false,
                   scales: { x: axis(series.x_label, series.log_x), y: axis(series.y_label, series.log_y) },
                   plugins: { legend: { labels: { filter: item => !datasets[item.datasetIndex].isBand } } } }
      };
      charts.push({ canvas: canvas, chart: new Chart(canvas, config) });
    }
  }
  let drawn = 0;
  for (const c of charts) {
    const ctx = c.canvas.getContext('2d');
    const pixels = ctx.getImageData(0, 0, c.canvas.width, c.canvas.height).data;
    let painted = false;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) { painted = true; break; }
    const hasData = c.chart.data.datasets.some(d => d.data.some(v => v !== null && (typeof v === 'number' || Number.isFinite(v.y))));
    if (painted && hasData) drawn++;
  }
  document.body.dataset.chartsExpected = String(charts.length);
  document.body.dataset.chartsDrawn = String(drawn);
})();
)";

}  // namespace

std::string render_report(const LabResults& r) {
  std::string chart_js;
  try {
    chart_js = nl::read_file(kChartJsPath, "report");
  } catch (const nl::Error& e) {
    throw nl::Error(nl::cat_str("report: Chart.js is missing (", kChartJsPath,
                                "); install Debian's libjs-chart.js (scripts/deps.sh does): ", e.what()));
  }
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>normlab BN "
       "lab</title>\n<style>"
    << kStyle << "</style>\n</head><body>\n";
  h << "<h1>normlab: the batch-normalization lab</h1>\n<p class=\"meta\">" << html_escape(r.created) << " · "
    << html_escape(r.machine) << "<br><code>" << html_escape(r.command) << "</code></p>\n<nav>";
  for (const StudyResult& s : r.studies)
    h << "<a href=\"#" << s.study << "\">" << html_escape(s.study) << "</a>";
  h << "</nav>\n";
  for (const StudyResult& s : r.studies) {
    h << "<section id=\"" << s.study << "\">\n<h2>" << html_escape(s.study) << "</h2>\n";
    h << "<blockquote><strong>Claim.</strong> " << html_escape(s.claim)
      << "<br><span class=\"meta\">Source: " << html_escape(s.source) << "</span></blockquote>\n";
    h << "<p>Reproduce: <code>" << html_escape(s.command) << "</code> ("
      << nl::cat_str(std::lround(s.wall_seconds)) << " s)</p>\n";
    h << "<div class=\"verdict " << (s.supported ? "supported" : "unsupported") << "\"><strong>"
      << (s.supported ? "Supported." : "Not supported.") << "</strong> " << html_escape(s.verdict)
      << "</div>\n";
    for (const Series& series : s.series) {
      h << "<figure><div class=\"chart\"><canvas id=\"chart-" << s.study << "-" << series.id
        << "\"></canvas></div><figcaption><strong>" << html_escape(series.title) << ".</strong> "
        << html_escape(series.caption) << "</figcaption></figure>\n";
    }
    h << "<table><tr><th>quantity</th><th>measured</th><th>expected</th><th></th></tr>\n";
    for (const TableRow& row : s.table) {
      h << "<tr><td>" << html_escape(row.quantity) << "</td><td class=\"num\">" << format_number(row.value)
        << "</td><td>" << html_escape(row.expected) << "</td><td>";
      if (row.ok) h << (*row.ok ? "<span class=\"ok\">✓</span>" : "<span class=\"fail\">✗</span>");
      h << "</td></tr>\n";
    }
    h << "</table>\n<details><summary>Settings</summary><pre>" << html_escape(s.settings.dump(2))
      << "</pre></details>\n</section>\n";
  }
  h << "<script>" << chart_js << "</script>\n";
  h << "<script type=\"application/json\" id=\"lab-results\">" << script_safe(to_document(r).dump())
    << "</script>\n<script>" << kRenderScript << "</script>\n</body></html>\n";
  return h.str();
}

void write_outputs(const std::string& dir, const LabResults& r) {
  std::filesystem::create_directories(dir);
  nl::write_file_atomically(dir + "/results.json", to_document(r).dump(2) + "\n", "normlab-lab");
  for (const StudyResult& s : r.studies)
    for (const Series& series : s.series)
      nl::write_file_atomically(dir + "/" + s.study + "-" + series.id + ".csv", series_csv(series),
                                "normlab-lab");
  nl::write_file_atomically(dir + "/report.html", render_report(r), "normlab-lab");
}

LabResults read_results(const std::string& dir) {
  const std::string path = dir + "/results.json";
  const std::string text = nl::read_file(path, "report");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw nl::Error(nl::cat_str("report: ", path, " is not valid JSON: ", e.what()));
  }
  nl::check(j.is_object() && j.value("schema", "") == kResultsSchema, "report: ", path,
            " is not a normlab-lab results file (schema '", kResultsSchema, "')");
  nl::check(j.value("version", 0) == kResultsVersion, "report: ", path, " has version ",
            j.value("version", 0), "; this program reads version ", kResultsVersion);
  try {
    LabResults r;
    r.created = j.at("created").get<std::string>();
    r.machine = j.at("machine").get<std::string>();
    r.command = j.at("command").get<std::string>();
    r.studies = j.at("studies").get<std::vector<StudyResult>>();
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw nl::Error(nl::cat_str("report: ", path, " does not follow the schema: ", e.what()));
  }
}

// The width of a UTF-8 string on a terminal, counting code points (‖, ≤ and η are one column each).
size_t display_width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string terminal_summary(const StudyResult& s) {
  std::ostringstream o;
  o << "== " << s.study << " (" << std::lround(s.wall_seconds) << " s)\n   claim: " << s.claim << "\n";
  size_t width = 8;
  for (const TableRow& row : s.table) width = std::max(width, display_width(row.quantity));
  for (const TableRow& row : s.table) {
    o << "   " << row.quantity << std::string(width - display_width(row.quantity) + 2, ' ')
      << format_number(row.value);
    if (!row.expected.empty()) o << "   (expected " << row.expected << ")";
    if (row.ok) o << (*row.ok ? "  ok" : "  NO");
    o << "\n";
  }
  o << "   verdict: " << (s.supported ? "SUPPORTED" : "NOT SUPPORTED") << ". " << s.verdict << "\n";
  return o.str();
}

}  // namespace lab
