// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tools/zcsweep_cli.h"

#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "zcplan/planner/cost.h"
#include "zcplan/planner/flag_types.h"
#include "zcplan/planner/planner.h"
#include "zcplan/planner/simulate.h"
#include "zcplan/planner/trace.h"
#include "zcplan/tools/cli_io.h"
#include "zcplan/tools/flags.h"
#include "zcplan/tools/json.h"
#include "zcplan/tools/stop_signals.h"
#include "zcplan/tune/calibration.h"
#include "zcplan/tune/plot.h"
#include "zcplan/tune/summary.h"
#include "zcplan/tune/sweep.h"
#include "zcplan/uring/net.h"

namespace zcplan {
namespace {

constexpr absl::string_view kDefaultThresholds = "0,1K..256K,never";
constexpr absl::string_view kDefaultProfile = "message:1024";
// A trace whose buffers fit kMaxSweepBufferBytes (8K and more each) has at
// most 131072 of them, a few MB of text even with zero sizes and comments;
// the general trace limit (1 GiB) would let parsing alone take many GB.
constexpr uint64_t kMaxSweepTraceBytes = uint64_t{16} << 20;

ThresholdList DefaultThresholds() {
  return {*ParseThresholdList(kDefaultThresholds)};
}

}  // namespace
}  // namespace zcplan

// The values are checked in ReadFlags, which names the flag in each error.
ABSL_FLAG(std::string, profile, std::string(zcplan::kDefaultProfile),
          "message:N, the reference message in N pieces");
ABSL_FLAG(std::string, trace, "", "a planner trace: one message per line");
ABSL_FLAG(zcplan::ByteSizeList, split, {}, "one message of these sizes");
ABSL_FLAG(zcplan::ThresholdList, thresholds, zcplan::DefaultThresholds(),
          "the thresholds to sweep");
ABSL_FLAG(std::vector<std::string>, copy_ops, {"writev"},
          "writev, sendmsg or both");
ABSL_FLAG(zcplan::ByteSizeList, gaps, zcplan::ByteSizeList{{0}},
          "gap-knob values to sweep");
ABSL_FLAG(std::string, adaptive, "off", "adaptive zero-copy: off, on or both");
ABSL_FLAG(zcplan::WholeNumber, repetitions, zcplan::WholeNumber{3},
          "runs per setting");
ABSL_FLAG(absl::Duration, time, absl::Milliseconds(300),
          "sending time per run");
ABSL_FLAG(zcplan::WholeNumber, in_flight, zcplan::WholeNumber{1},
          "messages in flight");
ABSL_FLAG(std::string, peer, "", "HOST:PORT of a TCP receiver");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Seconds(30),
          "how long a peer may take nothing (0: for ever)");
ABSL_FLAG(std::string, out, "zcsweep-out", "the directory for the files");
ABSL_FLAG(std::string, calibrate, "", "the weights file to write");
ABSL_FLAG(std::string, weights, "",
          "cost weights to rank the settings by, against the measurement");
ABSL_FLAG(bool, quiet, false, "no progress lines");

namespace zcplan {
namespace {

constexpr absl::string_view kFlagNames[] = {
    "profile",  "trace",       "split",   "thresholds",   "copy-ops",  "gaps",
    "adaptive", "repetitions", "time",    "idle-timeout", "in-flight", "peer",
    "out",      "calibrate",   "weights", "quiet"};

struct Config {
  std::string profile;
  bool has_profile = false;
  std::string trace_path;
  std::vector<uint64_t> split;  // empty: no --split
  SweepGrid grid;
  uint32_t repetitions = 0;
  absl::Duration time;
  uint32_t in_flight = 0;
  std::string peer;
  absl::Duration idle_timeout;
  std::string out_dir;
  std::string calibrate_path;
  std::string weights_path;  // --weights: read before the sweep into `weights`
  CostWeights weights;
  bool progress = true;
};

absl::Status Bad(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

// A library error that may quote user input as it was given (the planner's
// parsers do): escaped and capped for a one-line message.
std::string Echo(const absl::Status& status) {
  return EscapeForMessage(status.message(), 300);
}

absl::Status CheckPeer(const std::string& peer) {
  absl::StatusOr<std::pair<std::string, std::string>> hp = SplitHostPort(peer);
  if (hp.ok() && PlausibleHost(hp->first)) return absl::OkStatus();
  return Bad(absl::StrCat("bad address ", QuoteForMessage(peer),
                          ": expected HOST:PORT with a port 1..65535, "
                          "e.g. 127.0.0.1:9000 or [::1]:9000"));
}

absl::StatusOr<std::vector<CopyOp>> ParseCopyOps(
    const std::vector<std::string>& names) {
  if (names.empty()) return Bad("empty list; give writev, sendmsg or both");
  std::vector<CopyOp> ops;
  for (const std::string& name : names) {
    absl::StatusOr<CopyOp> op = ParseCopyOp(name);
    if (!op.ok()) return Bad(Echo(op.status()));
    ops.push_back(*op);
  }
  return ops;
}

absl::StatusOr<std::vector<bool>> ParseAdaptive(absl::string_view v) {
  if (v == "off") return std::vector<bool>{false};
  if (v == "on") return std::vector<bool>{true};
  if (v == "both") return std::vector<bool>{false, true};
  return Bad(
      absl::StrCat("bad value ", QuoteForMessage(v), " (off, on or both)"));
}

// OK unless an item of a setting list is given twice (it would be swept
// twice, and the two could look like two settings in the results).
template <typename T, typename Format>
absl::Status NoneRepeated(const std::vector<T>& items, Format format) {
  for (size_t i = 0; i < items.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (items[i] == items[j]) {
        return Bad(absl::StrCat("'", format(items[i]),
                                "' is given twice; each is swept once"));
      }
    }
  }
  return absl::OkStatus();
}

// The checks that need more than one flag.
absl::Status CheckCombination(const Config& c) {
  const int sources = c.has_profile + !c.trace_path.empty() + !c.split.empty();
  if (sources > 1) {
    return Bad("give one workload: --profile, --trace or --split");
  }
  if (!c.weights_path.empty() && !c.calibrate_path.empty()) {
    struct stat a {
    }, b{};
    if (c.weights_path == c.calibrate_path ||
        (stat(c.weights_path.c_str(), &a) == 0 &&
         stat(c.calibrate_path.c_str(), &b) == 0 && a.st_dev == b.st_dev &&
         a.st_ino == b.st_ino)) {
      return Bad(
          "--weights and --calibrate name the same file: the ranking would "
          "be by weights the calibration overwrites; give two files");
    }
  }
  for (const auto& [flag, path] :
       {std::make_pair("calibrate", &c.calibrate_path),
        std::make_pair("weights", &c.weights_path)}) {
    if (path->empty()) continue;
    const std::vector<SweepSetting> settings = GridSettings(c.grid);
    const size_t samples =
        std::count_if(settings.begin(), settings.end(), IsCalibrationSetting);
    if (samples < 2) {
      return Bad(absl::StrCat(
          "--", flag, " needs at least 2 settings without adaptive zero-copy ",
          path == &c.calibrate_path ? "to fit" : "to rank", "; this sweep has ",
          samples, " (give more --thresholds, or --adaptive off or both)"));
    }
  }
  return absl::OkStatus();
}

// Copies the parsed flags into `c` and checks them (called inside
// ParseFlags, while the values are set).
absl::Status ReadFlags(const ParsedFlags& parsed, Config& c) {
  auto given = [&](absl::string_view name) {
    return std::find(parsed.given.begin(), parsed.given.end(), name) !=
           parsed.given.end();
  };
  c.profile = absl::GetFlag(FLAGS_profile);
  c.has_profile = given("profile");
  c.trace_path = absl::GetFlag(FLAGS_trace);
  c.split = absl::GetFlag(FLAGS_split).bytes;
  c.grid.thresholds = absl::GetFlag(FLAGS_thresholds).bytes;
  absl::StatusOr<std::vector<CopyOp>> ops =
      ParseCopyOps(absl::GetFlag(FLAGS_copy_ops));
  c.grid.gaps = absl::GetFlag(FLAGS_gaps).bytes;
  absl::StatusOr<std::vector<bool>> adaptive =
      ParseAdaptive(absl::GetFlag(FLAGS_adaptive));
  c.repetitions = absl::GetFlag(FLAGS_repetitions).value;
  c.time = absl::GetFlag(FLAGS_time);
  c.in_flight = absl::GetFlag(FLAGS_in_flight).value;
  c.peer = absl::GetFlag(FLAGS_peer);
  c.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  c.out_dir = absl::GetFlag(FLAGS_out);
  c.calibrate_path = absl::GetFlag(FLAGS_calibrate);
  c.weights_path = absl::GetFlag(FLAGS_weights);
  c.progress = !absl::GetFlag(FLAGS_quiet);
  if (absl::Status s = FirstFailedCheck({
          {"trace", given("trace") && c.trace_path.empty() ? Bad("empty path")
                                                           : absl::OkStatus()},
          {"split", given("split") && c.split.empty()
                        ? Bad("empty list; give sizes, e.g. 4K,4K,16K")
                        : absl::OkStatus()},
          {"thresholds",
           c.grid.thresholds.empty()
               ? Bad(Echo(ParseThresholdList("").status()))
               : NoneRepeated(c.grid.thresholds, FormatThreshold)},
          {"copy-ops",
           !ops.ok()
               ? ops.status()
               : NoneRepeated(*ops, [](CopyOp op) { return CopyOpName(op); })},
          {"gaps", c.grid.gaps.empty() ? Bad(Echo(ParseSizeList("").status()))
                                       : NoneRepeated(c.grid.gaps, FormatSize)},
          {"adaptive", adaptive.status()},
          {"repetitions", CountInRange(c.repetitions, 1, 1000)},
          {"time", DurationInRange(c.time, absl::Nanoseconds(1), absl::Hours(1),
                                   "e.g. 300ms or 2s, up to 1h")},
          {"idle-timeout",
           DurationInRange(c.idle_timeout, absl::ZeroDuration(),
                           absl::Hours(24),
                           "e.g. 30s, up to 24h, or 0 for none")},
          {"in-flight", CountInRange(c.in_flight, 1, 1024)},
          {"peer", given("peer") ? CheckPeer(c.peer) : absl::OkStatus()},
          {"out",
           c.out_dir.empty() ? Bad("empty directory") : absl::OkStatus()},
          {"weights", given("weights") && c.weights_path.empty()
                          ? Bad("empty path")
                          : absl::OkStatus()},
          {"calibrate", given("calibrate") && c.calibrate_path.empty()
                            ? Bad("empty path")
                            : absl::OkStatus()},
      });
      !s.ok()) {
    return s;
  }
  c.grid.copy_ops = *std::move(ops);
  c.grid.adaptive = *std::move(adaptive);
  return CheckCombination(c);
}

// "split 4K,4K,16K", as the planner writes sizes.
std::string SplitName(const Config& c) {
  return absl::StrCat("split ", AbslUnparseFlag(ByteSizeList{c.split}));
}

// The workload's messages and a one-line description.
absl::StatusOr<std::pair<std::vector<std::vector<uint64_t>>, std::string>>
LoadWorkload(const Config& c) {
  std::vector<std::vector<uint64_t>> messages;
  if (!c.trace_path.empty()) {
    absl::StatusOr<std::string> text =
        ReadRegularFile(c.trace_path, "--trace", kMaxSweepTraceBytes);
    if (!text.ok()) return text.status();
    absl::StatusOr<std::vector<TraceBatch>> trace = ParseTrace(*text);
    if (!trace.ok()) {
      return Bad(absl::StrCat("--trace ", QuoteForMessage(c.trace_path), ": ",
                              Echo(trace.status())));
    }
    for (TraceBatch& b : *trace) {
      b.sizes.erase(std::remove(b.sizes.begin(), b.sizes.end(), 0),
                    b.sizes.end());
      if (!b.sizes.empty()) messages.push_back(std::move(b.sizes));
    }
    if (messages.empty()) {
      return Bad(absl::StrCat("--trace ", QuoteForMessage(c.trace_path),
                              ": every buffer is empty"));
    }
    return std::make_pair(
        messages, absl::StrCat("trace ", EscapeForMessage(c.trace_path), " (",
                               messages.size(), " messages)"));
  }
  if (!c.split.empty()) {
    std::vector<uint64_t> sizes = c.split;
    sizes.erase(std::remove(sizes.begin(), sizes.end(), 0), sizes.end());
    if (sizes.empty()) return Bad("--split: every buffer is empty");
    messages.push_back(std::move(sizes));
    return std::make_pair(messages, SplitName(c));
  }
  absl::string_view profile = c.profile;
  if (absl::ConsumePrefix(&profile, "message:")) {
    absl::StatusOr<uint32_t> n = ParseCount(profile, 1, kMaxReferencePieces);
    if (!n.ok()) return Bad(absl::StrCat("--profile: ", Echo(n.status())));
    absl::StatusOr<std::vector<uint64_t>> sizes = ReferenceMessageSizes(*n);
    if (!sizes.ok()) return sizes.status();
    messages.push_back(*sizes);
    return std::make_pair(
        messages,
        absl::StrCat("profile ", c.profile, ": the 256K reference message in ",
                     *n,
                     " pieces (4K header, two 64K pieces, the rest small)"));
  }
  return Bad(absl::StrCat("--profile: unknown profile ",
                          QuoteForMessage(c.profile), " (message:N, N = 1..",
                          kMaxReferencePieces, ")"));
}

// A short name for the plot's title.
std::string WorkloadName(const Config& c) {
  if (!c.trace_path.empty()) {
    return absl::StrCat("trace ", EscapeForMessage(c.trace_path.substr(
                                      c.trace_path.find_last_of('/') + 1)));
  }
  if (!c.split.empty()) return SplitName(c);
  return c.profile;
}

std::string Share(double share) {
  return share < 0 ? "-" : absl::StrFormat("%.0f%%", share * 100);
}

std::string JsonThreshold(uint64_t t) {
  return t == PlanOptions::kNever ? "\"never\"" : absl::StrCat(t);
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) {
    return absl::UnavailableError(absl::StrCat(
        "cannot write ", QuoteForMessage(path), ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// Every output is checked before the sweep, so that a bad --out or
// --calibrate fails at once instead of after the whole sweep.
absl::Status CheckOutputs(const Config& c) {
  if (absl::Status s = CheckOutputDirectory(c.out_dir, "--out"); !s.ok()) {
    return s;
  }
  struct stat st {};
  if (stat(c.out_dir.c_str(), &st) == 0) {  // files in an existing directory
    for (const char* name : {"/sweep.csv", "/sweep.json", "/sweep.svg"}) {
      if (absl::Status s = CheckOutputFile(c.out_dir + name, "--out");
          !s.ok()) {
        return s;
      }
    }
  }
  if (!c.calibrate_path.empty()) {
    return CheckOutputFile(c.calibrate_path, "--calibrate");
  }
  return absl::OkStatus();
}

SweepOptions MakeSweepOptions(const Config& c,
                              std::vector<std::vector<uint64_t>> messages) {
  SweepOptions so;
  so.messages = std::move(messages);
  so.repetitions = c.repetitions;
  so.run_time = c.time;
  so.messages_in_flight = c.in_flight;
  so.peer = c.peer;
  so.idle_timeout = c.idle_timeout;
  so.settings = GridSettings(c.grid);
  return so;
}

const char* SignalName(int signal) {
  return signal == SIGINT ? "SIGINT" : "SIGTERM";
}

// The table of `points`; `recommended` marks a row (npos: none).
void PrintTable(const Config& c, const std::vector<SweepPoint>& points,
                const std::vector<PointSummary>& sums, size_t recommended,
                std::ostream& out) {
  out << "\n"
      << absl::StrFormat("%-34s %20s %22s %8s %7s %8s %7s\n", "setting",
                         "MB/s median (range)", "CPU s/GB median (range)",
                         "ops/msg", "zc", "copied", "short");
  for (size_t i = 0; i < points.size(); ++i) {
    const PointSummary& s = sums[i];
    out << absl::StrFormat(
        "%-34s %7.0f (%5.0f..%5.0f) %8.3f (%5.3f..%5.3f) %8.1f %7s %8s %7d%s\n",
        DescribeSetting(points[i].setting), s.mb_per_s, s.mb_per_s_min,
        s.mb_per_s_max, s.cpu_s_per_gb, s.cpu_s_per_gb_min, s.cpu_s_per_gb_max,
        s.ops_per_message, Share(s.zero_copy_share), Share(s.copied_share),
        s.short_sends, i == recommended ? "  <- recommended" : "");
  }
  out << "(zc: share of bytes sent zero-copy; copied: share of notifications "
         "that said the kernel copied anyway; CPU: the sending thread, user + "
         "system"
      << (c.peer.empty() ? ", which on loopback includes the kernel's TCP "
                           "receive processing"
                         : "")
      << ")\n";
}

// After SIGINT or SIGTERM: the runs done so far, and one line on `err`.
int ReportInterrupted(const Config& c, const Sweep& sweep, int signal,
                      std::ostream& out, std::ostream& err) {
  std::vector<SweepPoint> measured;
  std::vector<PointSummary> sums;
  for (const SweepPoint& p : sweep.points()) {
    if (p.runs.empty()) continue;
    measured.push_back(p);
    sums.push_back(Summarize(p));
  }
  PrintTable(c, measured, sums, std::string::npos, out);
  out << std::flush;
  err << "zcsweep: interrupted by " << SignalName(signal) << " after "
      << sweep.runs_done() << " of " << sweep.runs_total()
      << " runs: the table above has the runs done; no files written\n";
  return kZcsweepInterruptedBase + signal;
}

std::string ResultsJson(const Config& c, absl::string_view workload,
                        uint64_t message_bytes,
                        const std::vector<SweepPoint>& points,
                        const std::vector<PointSummary>& sums,
                        const Recommendation& rec, bool all_copied) {
  std::string json = absl::StrCat(
      "{\"workload\": ", JsonString(workload),
      ", \"message_bytes\": ", message_bytes,
      ", \"peer\": ", JsonString(c.peer.empty() ? "loopback" : c.peer),
      ", \"repetitions\": ", c.repetitions,
      ", \"run_seconds\": ", JsonNumber(absl::ToDoubleSeconds(c.time)),
      ", \"recommended\": ", rec.index,
      ", \"reason\": ", JsonString(rec.reason),
      ", \"all_notifications_copied\": ", all_copied ? "true" : "false",
      ",\n \"points\": [\n");
  for (size_t i = 0; i < points.size(); ++i) {
    const SweepPoint& p = points[i];
    const PointSummary& s = sums[i];
    auto range = [](double median, double min, double max,
                    const absl::FormatSpec<double>& f) {
      return absl::StrCat("{\"median\": ", JsonNumber(median, f),
                          ", \"min\": ", JsonNumber(min, f),
                          ", \"max\": ", JsonNumber(max, f), "}");
    };
    absl::StrAppend(
        &json, "  {\"threshold\": ", JsonThreshold(p.setting.plan.zc_threshold),
        ", \"copy_op\": ", JsonString(CopyOpName(p.setting.plan.copy_op)),
        ", \"gap\": ", p.setting.plan.zc_gap_bytes,
        ", \"adaptive\": ", p.setting.adaptive ? "true" : "false",
        ", \"mb_per_s\": ",
        range(s.mb_per_s, s.mb_per_s_min, s.mb_per_s_max, "%.1f"),
        ", \"cpu_s_per_gb\": ",
        range(s.cpu_s_per_gb, s.cpu_s_per_gb_min, s.cpu_s_per_gb_max, "%.4f"));
    absl::StrAppend(
        &json, ", \"ops_per_message\": ", JsonNumber(s.ops_per_message, "%.2f"),
        ", \"zero_copy_share\": ", JsonNumber(s.zero_copy_share, "%.4f"),
        ", \"copied_share\": ", JsonNumber(s.copied_share, "%.4f"),
        ", \"short_sends\": ", s.short_sends, ", \"runs\": ", p.runs.size(),
        "}", i + 1 < points.size() ? "," : "", "\n");
  }
  return json + " ]}\n";
}

std::string ResultsCsv(const std::vector<SweepPoint>& points) {
  std::string csv =
      "threshold,copy_op,gap,adaptive,repetition,seconds,cpu_seconds,messages,"
      "bytes,mb_per_s,cpu_s_per_gb,ops,bytes_copied,bytes_zero_copy,"
      "short_sends,notifications,copied_notifications\n";
  for (const SweepPoint& p : points) {
    for (size_t k = 0; k < p.runs.size(); ++k) {
      const SweepRun& r = p.runs[k];
      uint64_t ops = 0;
      for (uint64_t n : r.stats.ops) ops += n;
      absl::StrAppend(
          &csv,
          p.setting.plan.zc_threshold == PlanOptions::kNever
              ? std::string("never")
              : absl::StrCat(p.setting.plan.zc_threshold),
          ",", CopyOpName(p.setting.plan.copy_op), ",",
          p.setting.plan.zc_gap_bytes, ",", p.setting.adaptive ? 1 : 0, ",",
          k + 1, ",", absl::StrFormat("%.6f,%.6f", r.seconds, r.cpu_seconds),
          ",", r.messages, ",", r.bytes, ",",
          absl::StrFormat("%.1f,%.4f", r.bytes / r.seconds / 1e6,
                          r.cpu_seconds / (r.bytes / 1e9)),
          ",", ops, ",", r.stats.bytes_copied, ",", r.stats.bytes_zero_copy,
          ",", r.stats.short_sends, ",", r.stats.notifications, ",",
          r.stats.copied_notifications, "\n");
    }
  }
  return csv;
}

// Fits the cost model to the measured CPU per message, writes the weights
// to --calibrate and reports the fit.
absl::Status Calibrate(const Config& c, const SweepOptions& so,
                       absl::string_view workload,
                       const std::vector<SweepPoint>& points,
                       const std::vector<PointSummary>& sums,
                       std::ostream& out) {
  absl::StatusOr<SweepCalibration> cal =
      CalibrateSweep(so.messages, points, sums);
  if (!cal.ok()) {
    return absl::Status(cal.status().code(),
                        absl::StrCat("--calibrate: ", cal.status().message()));
  }
  const std::string file = FormatWeightsFile(
      *cal,
      {"zcsweep", std::string(workload), c.peer.empty() ? "loopback" : c.peer});
  if (absl::Status s = WriteText(c.calibrate_path, file); !s.ok()) return s;
  out << "\ncalibrated cost weights (ns per unit) written to "
      << EscapeForMessage(c.calibrate_path) << ":\n";
  // Rounded for reading; the file has the exact values.
  for (absl::string_view line : absl::StrSplit(
           FormatCostWeights(cal->fit.weights), '\n', absl::SkipEmpty())) {
    const std::vector<absl::string_view> words = absl::StrSplit(line, ' ');
    double value = 0;
    if (words.size() == 2 && absl::SimpleAtod(words[1], &value)) {
      out << absl::StrFormat("  %-16s %.4g\n", words[0], value);
    } else {
      out << "  " << line << "\n";
    }
  }
  if (!cal->fit.unfitted.empty()) {
    out << "  not determined by this sweep: "
        << absl::StrJoin(cal->fit.unfitted, ", ") << "\n";
  }
  out << absl::StrFormat(
      "model vs measurement over %d settings: rms relative error %.1f%%; "
      "ranking agreement (Kendall tau, 1 = same order) %.2f calibrated, "
      "%.2f with the default weights\n",
      cal->samples.size(), cal->fit.rms_relative_error * 100, cal->tau_fitted,
      cal->tau_default);
  out << "cheapest by measurement: "
      << DescribeSetting(points[cal->cheapest_measured].setting)
      << "; by the calibrated model: "
      << DescribeSetting(points[cal->cheapest_fitted].setting)
      << "; by the default model: "
      << DescribeSetting(points[cal->cheapest_default].setting) << "\n";
  return absl::OkStatus();
}

// How the --weights model ranks the measured settings: the check of weights
// calibrated on another workload.
absl::Status RankByWeights(const Config& c, const SweepOptions& so,
                           const std::vector<SweepPoint>& points,
                           const std::vector<PointSummary>& sums,
                           std::ostream& out) {
  absl::StatusOr<SweepRanking> r =
      RankSweep(so.messages, points, sums, c.weights);
  if (!r.ok()) {
    return absl::Status(r.status().code(),
                        absl::StrCat("--weights: ", r.status().message()));
  }
  out << absl::StrFormat(
      "\nthe weights in %s against this measurement, over %d settings: "
      "ranking agreement (Kendall tau, 1 = same order) %.2f\n",
      EscapeForMessage(c.weights_path), r->samples.size(), r->tau);
  out << "cheapest by measurement: "
      << DescribeSetting(points[r->cheapest_measured].setting)
      << "; by those weights: "
      << DescribeSetting(points[r->cheapest_modelled].setting) << "\n";
  return absl::OkStatus();
}

// The table, the recommendation, the files and the calibration of a
// finished sweep.
int Report(const Config& c, const SweepOptions& so, absl::string_view workload,
           const std::vector<SweepPoint>& points, std::ostream& out,
           std::ostream& err) {
  std::vector<PointSummary> sums;
  uint64_t notifications = 0, copied = 0;
  for (const SweepPoint& p : points) {
    sums.push_back(Summarize(p));
    notifications += sums.back().notifications;
    copied += sums.back().copied_notifications;
  }
  const bool all_copied = notifications > 0 && copied == notifications;
  const Recommendation rec = Recommend(points, sums);
  PrintTable(c, points, sums, rec.index, out);
  out << "\nrecommended: " << DescribeSetting(points[rec.index].setting)
      << "\n  because: " << rec.reason << "\n";
  if (c.repetitions < 2) {
    out << "  note: with one repetition per setting the noise is not known; "
           "use --repetitions 3 or more before trusting the recommendation\n";
  }
  if (all_copied) {
    out << "\nwarning: every zero-copy notification (" << notifications
        << ") said the kernel copied the data anyway (loopback, veth, or a "
           "NIC without scatter-gather): these numbers say nothing about "
           "zero-copy on real hardware. Run zcsweep --peer against a "
           "receiver on another machine to tune for a real NIC.\n";
  }

  uint64_t message_bytes = 0;
  for (const auto& m : so.messages) {
    for (uint64_t s : m) message_bytes += s;
  }
  const std::string title = absl::StrCat("zcsweep: ", WorkloadName(c), " to ",
                                         c.peer.empty() ? "loopback" : c.peer);
  // Checked before the sweep; made only now, so that a sweep that fails or
  // is interrupted leaves no empty directory behind.
  if (mkdir(c.out_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    err << "zcsweep: --out " << QuoteForMessage(c.out_dir)
        << ": cannot create: " << std::strerror(errno) << "\n";
    return kZcsweepFailed;
  }
  const std::string base = c.out_dir + "/sweep";
  for (const auto& [path, text] :
       {std::make_pair(base + ".csv", ResultsCsv(points)),
        std::make_pair(
            base + ".json",
            ResultsJson(c, workload, message_bytes / so.messages.size(), points,
                        sums, rec, all_copied)),
        std::make_pair(
            base + ".svg",
            SweepPlotSvg(points, sums, c.grid.thresholds, title, rec.index))}) {
    if (absl::Status s = WriteText(path, text); !s.ok()) {
      err << "zcsweep: " << s.message() << "\n";
      return kZcsweepFailed;
    }
  }
  const std::string shown = EscapeForMessage(base);
  out << "\nwrote " << shown << ".csv, " << shown << ".json, " << shown
      << ".svg\n";
  if (!c.calibrate_path.empty()) {
    if (absl::Status s = Calibrate(c, so, workload, points, sums, out);
        !s.ok()) {
      err << "zcsweep: " << s.message() << "\n";
      return kZcsweepFailed;
    }
  }
  if (!c.weights_path.empty()) {
    if (absl::Status s = RankByWeights(c, so, points, sums, out); !s.ok()) {
      err << "zcsweep: " << s.message() << "\n";
      return kZcsweepFailed;
    }
  }
  return kZcsweepOk;
}

int Run(Config c, std::ostream& out, std::ostream& err) {
  // Everything the user gave is checked before anything starts.
  absl::StatusOr<std::pair<std::vector<std::vector<uint64_t>>, std::string>>
      workload = LoadWorkload(c);
  if (!workload.ok()) {
    err << "zcsweep: " << workload.status().message() << "\n";
    return kZcsweepBadInput;
  }
  if (absl::Status s = CheckOutputs(c); !s.ok()) {
    err << "zcsweep: " << s.message() << "\n";
    return kZcsweepBadInput;
  }
  if (!c.weights_path.empty()) {
    absl::StatusOr<CostWeights> weights = ReadCostWeightsFile(c.weights_path);
    if (!weights.ok()) {
      err << "zcsweep: --weights: " << weights.status().message() << "\n";
      return kZcsweepBadInput;
    }
    c.weights = *weights;
  }
  SweepOptions so = MakeSweepOptions(c, workload->first);
  if (absl::Status s = ValidateSweepOptions(so); !s.ok()) {
    err << "zcsweep: " << Echo(s) << "\n";
    return kZcsweepBadInput;
  }

  const ScopedStopSignals signals;  // Only recorded; the sweep looks.
  so.should_stop = [] { return ScopedStopSignals::Pending() != 0; };
  // Connect (or start the receiver thread) before printing anything: an
  // unreachable peer is one line on stderr.
  absl::StatusOr<std::unique_ptr<Sweep>> sweep = Sweep::Start(so);
  if (!sweep.ok()) {
    if (const int signal = ScopedStopSignals::Pending(); signal != 0) {
      err << "zcsweep: interrupted by " << SignalName(signal)
          << " before the sweep started\n";
      return kZcsweepInterruptedBase + signal;
    }
    err << "zcsweep: " << Echo(sweep.status()) << "\n";
    return kZcsweepFailed;
  }
  out << "zcsweep: " << workload->second << "\n"
      << "to " << (*sweep)->destination() << "; " << so.settings.size()
      << " settings x " << c.repetitions << " repetitions x "
      << absl::FormatDuration(c.time) << ", " << c.in_flight
      << " message(s) in flight\n"
      << std::flush;
  if (!out) {  // e.g. stdout on a full disk: the results would be lost
    err << "zcsweep: cannot write the results to standard output\n";
    return kZcsweepFailed;
  }

  const absl::Time started = absl::Now();
  const absl::Status run =
      (*sweep)->Run([&](size_t done, size_t total, const SweepPoint& point) {
        if (!c.progress) return;
        const SweepRun& r = point.runs.back();
        const double elapsed = absl::ToDoubleSeconds(absl::Now() - started);
        err << absl::StrFormat(
            "[%d/%d] %s: %.0f MB/s, %.3f s/GB, %d messages (%.0f s left)\n",
            done, total, DescribeSetting(point.setting),
            r.bytes / r.seconds / 1e6, r.cpu_seconds / (r.bytes / 1e9),
            r.messages, elapsed / done * (total - done));
      });
  if (!run.ok()) {
    if (const int signal = ScopedStopSignals::Pending();
        signal != 0 && absl::IsCancelled(run)) {
      return ReportInterrupted(c, **sweep, signal, out, err);
    }
    err << "zcsweep: " << Echo(run) << "\n";
    return kZcsweepFailed;
  }
  return Report(c, so, workload->second, (*sweep)->points(), out, err);
}

}  // namespace

std::string ZcsweepUsage() {
  return absl::StrFormat(
      R"(usage: zcsweep [flags]

Tunes the zero-copy threshold on this machine: sends a workload through the
zcplan executor under each threshold, several times each, and reports
throughput and the sending thread's CPU per GB, with a recommendation.

  zcsweep                                  reference message, loopback
  zcsweep --peer HOST:9000 --time 2s       to a receiver on another machine
                                           (zcsend --listen 9000, or any sink)

Workload (one of):
  --profile NAME       message:N: the 256K reference message in N pieces
                       (4K header, two 64K pieces, the rest small) [%s]
  --trace FILE         a planner trace: one message per line, in turn
                       (up to 16 MiB)
  --split LIST         one message of these sizes, e.g. 4K,4K,16K,32K,2K

Sweep:
  --thresholds LIST    sizes, 'never', or A..B for A, 2A, 4A, ... up to B
                       [%s]
  --copy-ops LIST      writev, sendmsg or writev,sendmsg [writev]
  --gaps LIST          gap-knob values to try, e.g. 0,64 [0]
  --adaptive MODE      off, on or both (adaptive zero-copy) [off]
  --repetitions N      runs per setting; medians and ranges over them [3]
  --time DURATION      sending time per run, e.g. 300ms, 2s [300ms]
  --in-flight N        messages in flight [1]; each holds a copy of the
                       workload, every piece on its own pages plus a gap
                       page, and all of them together may take at most 1 GiB
  --peer HOST:PORT     send to this TCP receiver instead of a receiver thread
                       on 127.0.0.1 (one connection for the whole sweep)
  --idle-timeout D     give up (exit 1) when for this long the peer
                       acknowledges no byte and no buffer is released; 0: wait
                       for ever [30s]

Output:
  --out DIR            write DIR/sweep.csv (every run), DIR/sweep.json
                       (medians) and DIR/sweep.svg (the plot) [zcsweep-out]
  --weights FILE       after the sweep, rank the settings by the cost model
                       with these weights (a file --calibrate wrote, say on
                       another workload) and give the ranking agreement with
                       the measurement (Kendall tau); read before the sweep
  --calibrate FILE     fit the planner's cost weights to the measured CPU per
                       message and write them to FILE, for
                       zcplan simulate --weights FILE (needs at least 2
                       settings without adaptive zero-copy)
  --quiet              no progress lines on stderr

Every output is checked before the sweep starts. SIGINT or SIGTERM stops the
sweep: the runs done so far are printed and the exit status is 130 or 143.

Exit status: 0 on success; 1 when the sweep fails (io_uring unavailable, the
peer unreachable or idle, a send error, out of memory, standard output not
writable); 2 on bad input; 130/143 when interrupted.
)",
      kDefaultProfile, kDefaultThresholds);
}

int RunZcsweep(absl::Span<const std::string> args, std::ostream& out,
               std::ostream& err) {
  switch (AnswerVersionOrHelp(args, "zcsweep", ZcsweepUsage, out)) {
    case FirstAnswer::kAnswered:
      return kZcsweepOk;
    case FirstAnswer::kOutputFailed:
      err << "zcsweep: cannot write the help to standard output\n";
      return kZcsweepFailed;
    case FirstAnswer::kNone:
      break;
  }
  int code = kZcsweepOk;
  try {
    Config config;
    if (absl::Status s = ParseFlags(args, kFlagNames, {"zcsweep", "", false},
                                    [&](const ParsedFlags& parsed) {
                                      return ReadFlags(parsed, config);
                                    })
                             .status();
        !s.ok()) {
      err << "zcsweep: " << s.message() << "\n";
      return kZcsweepBadInput;
    }
    code = Run(config, out, err);
  } catch (const std::bad_alloc&) {
    // The last resort: the buffer memory is bounded before the sweep, but
    // a large trace or a tight ulimit -v may still run out.
    err << "zcsweep: out of memory\n";
    return kZcsweepFailed;
  }
  out.flush();
  if (!out && code == kZcsweepOk) {
    err << "zcsweep: cannot write the results to standard output\n";
    return kZcsweepFailed;
  }
  return code;
}

}  // namespace zcplan
