#include "tools/zcplan_cli.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "planner/cost.h"
#include "planner/describe.h"
#include "planner/planner.h"
#include "planner/simulate.h"
#include "planner/trace.h"

namespace zcplan {
namespace {

constexpr absl::string_view kDefaultThresholds = "1K..256K,never";

enum class Command { kPlan, kSimulate };
enum class Format { kTable, kJson };

struct Config {
  Command command = Command::kPlan;
  PlanOptions options;
  CostWeights weights;
  bool weights_from_flags = false;
  std::string weights_path;  // --weights FILE
  bool has_trace = false;
  std::string trace_path;
  std::vector<uint64_t> thresholds;  // Empty: kDefaultThresholds.
  Format format = Format::kTable;
  std::vector<std::string> sizes;  // Positional arguments.
};

absl::Status Bad(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

// --- Values -----------------------------------------------------------------

absl::StatusOr<uint32_t> ParseCount(absl::string_view text) {
  uint32_t value = 0;
  if (text.empty() ||
      !std::all_of(text.begin(), text.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(text, &value)) {
    return Bad(absl::StrCat("bad number '", text,
                            "': expected a whole number, e.g. 64"));
  }
  return value;
}

// `what` names the file in errors: "trace file", "weights file".
absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     absl::string_view what) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return Bad(absl::StrCat("cannot read ", what, " '", path,
                            "': ", std::strerror(errno)));
  }
  std::string text;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
    text.append(buffer, n);
  }
  const int error = std::ferror(file) ? errno : 0;
  std::fclose(file);
  if (error != 0) {
    return Bad(absl::StrCat("cannot read ", what, " '", path,
                            "': ", std::strerror(error)));
  }
  return text;
}

// --- Flags ------------------------------------------------------------------

using Setter = absl::Status (*)(absl::string_view value, Config& config);

struct Flag {
  absl::string_view name;
  bool plan;
  bool simulate;
  Setter set;                             // Null for a cost weight:
  double CostWeights::*weight = nullptr;  // this one is set instead.
};

absl::Status SetSize(absl::string_view value, uint64_t* field) {
  absl::StatusOr<uint64_t> size = ParseSize(value);
  if (!size.ok()) return size.status();
  *field = *size;
  return absl::OkStatus();
}

absl::Status SetCount(absl::string_view value, uint32_t* field) {
  absl::StatusOr<uint32_t> count = ParseCount(value);
  if (!count.ok()) return count.status();
  *field = *count;
  return absl::OkStatus();
}

absl::Status SetWeight(absl::string_view value, double CostWeights::*weight,
                       Config& c) {
  if (!absl::SimpleAtod(value, &(c.weights.*weight))) {
    return Bad(absl::StrCat("bad weight '", value,
                            "': expected a non-negative number"));
  }
  c.weights_from_flags = true;
  return absl::OkStatus();
}

constexpr Flag kFlags[] = {
    {"trace", true, true,
     [](absl::string_view v, Config& c) {
       c.has_trace = true;
       c.trace_path = std::string(v);
       return absl::OkStatus();
     }},
    {"format", true, true,
     [](absl::string_view v, Config& c) {
       if (v == "table") {
         c.format = Format::kTable;
       } else if (v == "json") {
         c.format = Format::kJson;
       } else {
         return Bad(absl::StrCat("unknown format '", v, "' (table or json)"));
       }
       return absl::OkStatus();
     }},
    {"threshold", true, false,
     [](absl::string_view v, Config& c) {
       absl::StatusOr<uint64_t> t = ParseThreshold(v);
       if (!t.ok()) return t.status();
       c.options.zc_threshold = *t;
       return absl::OkStatus();
     }},
    {"thresholds", false, true,
     [](absl::string_view v, Config& c) {
       absl::StatusOr<std::vector<uint64_t>> t = ParseThresholdList(v);
       if (!t.ok()) return t.status();
       c.thresholds = *std::move(t);
       return absl::OkStatus();
     }},
    {"copy-op", true, true,
     [](absl::string_view v, Config& c) {
       absl::StatusOr<CopyOp> op = ParseCopyOp(v);
       if (!op.ok()) return op.status();
       c.options.copy_op = *op;
       return absl::OkStatus();
     }},
    {"max-iovs", true, true,
     [](absl::string_view v, Config& c) {
       return SetCount(v, &c.options.max_iovs_per_op);
     }},
    {"max-bytes", true, true,
     [](absl::string_view v, Config& c) {
       return SetSize(v, &c.options.max_bytes_per_op);
     }},
    {"max-ops", true, true,
     [](absl::string_view v, Config& c) {
       return SetCount(v, &c.options.max_ops_per_chain);
     }},
    {"gap", true, true,
     [](absl::string_view v, Config& c) {
       return SetSize(v, &c.options.zc_gap_bytes);
     }},
    {"weights", false, true,
     [](absl::string_view v, Config& c) {
       if (v.empty()) return Bad("empty path");
       c.weights_path = std::string(v);
       return absl::OkStatus();
     }},
    {"per-op", false, true, nullptr, &CostWeights::per_op},
    {"per-zc-op", false, true, nullptr, &CostWeights::per_zc_op},
    {"per-copy-byte", false, true, nullptr, &CostWeights::per_copy_byte},
    {"per-zc-byte", false, true, nullptr, &CostWeights::per_zc_byte},
    {"per-copy-iov", false, true, nullptr, &CostWeights::per_copy_iov},
    {"per-zc-iov", false, true, nullptr, &CostWeights::per_zc_iov},
    {"per-pinned-page", false, true, nullptr, &CostWeights::per_pinned_page},
    {"page-size", false, true,
     [](absl::string_view v, Config& c) {
       c.weights_from_flags = true;
       return SetSize(v, &c.weights.page_size);
     }},
};

absl::string_view CommandName(Command command) {
  return command == Command::kPlan ? "plan" : "simulate";
}

bool IsHelp(absl::string_view arg) { return arg == "--help" || arg == "-h"; }

// A negative number is a (bad) size for ParseSize to reject, not a flag.
bool LooksLikeFlag(absl::string_view arg) {
  return arg.size() > 1 && arg[0] == '-' && !absl::ascii_isdigit(arg[1]);
}

absl::Status ParseFlags(absl::Span<const std::string> args, Config& config) {
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const absl::string_view arg = args[i];
    if (flags_done || !LooksLikeFlag(arg)) {
      config.sizes.push_back(args[i]);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    const size_t eq = arg.find('=');
    const absl::string_view name = absl::StripPrefix(arg.substr(0, eq), "--");
    const Flag* flag = nullptr;
    for (const Flag& f : kFlags) {
      if (f.name == name &&
          (config.command == Command::kPlan ? f.plan : f.simulate)) {
        flag = &f;
      }
    }
    if (flag == nullptr || !absl::StartsWith(arg, "--")) {
      return Bad(absl::StrCat("unknown flag '", arg.substr(0, eq), "' for '",
                              CommandName(config.command),
                              "'; see zcplan --help"));
    }
    absl::string_view value;
    if (eq != absl::string_view::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < args.size() && !absl::StartsWith(args[i + 1], "--")) {
      value = args[++i];
    } else {
      return Bad(absl::StrCat("flag --", name, " needs a value"));
    }
    if (absl::Status s = flag->set != nullptr
                             ? flag->set(value, config)
                             : SetWeight(value, flag->weight, config);
        !s.ok()) {
      return Bad(absl::StrCat("--", name, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TraceBatch>> LoadBatches(const Config& config) {
  if (config.has_trace && !config.sizes.empty()) {
    return Bad(absl::StrCat("give sizes or --trace, not both (got '",
                            config.sizes[0], "' and --trace ",
                            config.trace_path, ")"));
  }
  if (!config.has_trace) {
    if (config.sizes.empty()) {
      return Bad(absl::StrCat("no sizes given: use zcplan ",
                              CommandName(config.command),
                              " SIZE... or --trace FILE"));
    }
    absl::StatusOr<std::vector<uint64_t>> sizes =
        ParseSizeList(absl::StrJoin(config.sizes, " "));
    if (!sizes.ok()) return sizes.status();
    return std::vector<TraceBatch>{TraceBatch{0, *std::move(sizes)}};
  }
  absl::StatusOr<std::string> text = ReadFile(config.trace_path, "trace file");
  if (!text.ok()) return text.status();
  absl::StatusOr<std::vector<TraceBatch>> trace = ParseTrace(*text);
  if (!trace.ok()) {
    return Bad(absl::StrCat(config.trace_path, ": ", trace.status().message()));
  }
  return trace;
}

// --- Formatting -------------------------------------------------------------

// "300 bytes", "56K (57344 bytes)".
std::string SizeAndBytes(uint64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " bytes");
  return absl::StrCat(HumanSize(bytes), " (", bytes, " bytes)");
}

// "1 op", "3 ops", "2 batches".
std::string Count(uint64_t n, absl::string_view noun) {
  return absl::StrCat(n, " ", noun,
                      n == 1                      ? ""
                      : absl::EndsWith(noun, "h") ? "es"
                                                  : "s");
}

std::string JsonThreshold(uint64_t threshold) {
  return threshold == PlanOptions::kNever ? "\"never\""
                                          : absl::StrCat(threshold);
}

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      absl::StrAppend(&out, "\\", std::string(1, c));
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

// Columns padded to their widest cell; `align` has one 'l' or 'r' per column.
class TextTable {
 public:
  explicit TextTable(absl::string_view align) : align_(align) {}

  void AddRow(std::vector<std::string> cells) {
    rows_.push_back(std::move(cells));
  }

  void AppendTo(absl::string_view indent, std::string* out) const {
    std::vector<size_t> width(align_.size(), 0);
    for (const auto& row : rows_) {
      for (size_t c = 0; c < row.size(); ++c) {
        width[c] = std::max(width[c], row[c].size());
      }
    }
    for (const auto& row : rows_) {
      std::string line(indent);
      for (size_t c = 0; c < row.size(); ++c) {
        const std::string pad(width[c] - row[c].size(), ' ');
        if (c > 0) line += "  ";
        line += align_[c] == 'r' ? pad + row[c] : row[c] + pad;
      }
      absl::StrAppend(out, absl::StripTrailingAsciiWhitespace(line), "\n");
    }
  }

 private:
  std::string align_;
  std::vector<std::vector<std::string>> rows_;
};

std::string DescribeOptions(const PlanOptions& o, bool with_threshold) {
  return absl::StrCat(
      with_threshold
          ? absl::StrCat("threshold ", FormatThreshold(o.zc_threshold), ", ")
          : "",
      "copy op ", CopyOpName(o.copy_op), ", at most ", o.max_iovs_per_op,
      " iovecs and ", o.max_bytes_per_op, " bytes per op, ",
      o.max_ops_per_chain, " ops per chain, gap ",
      o.zc_gap_bytes == 0 ? "off" : FormatSize(o.zc_gap_bytes));
}

std::string OpCounts(const PlanCost& cost) {
  std::vector<std::string> parts;
  for (int k = 0; k < kNumOpKinds; ++k) {
    if (cost.ops_by_kind[k] == 0) continue;
    parts.push_back(absl::StrCat(OpKindName(static_cast<OpKind>(k)), " ",
                                 cost.ops_by_kind[k]));
  }
  return absl::StrJoin(parts, ", ");
}

// --- plan -------------------------------------------------------------------

struct PlannedOp {
  Op op;  // first_iov is absolute within the batch.
  size_t chain;
};

struct BatchPlan {
  std::vector<PlannedOp> ops;
  std::vector<std::string> chain_text;  // DescribeChain, one per chain.
  PlanCost counts;  // Only the counts are used: weights are not plan's topic.
};

absl::StatusOr<BatchPlan> PlanBatch(const TraceBatch& batch,
                                    const PlanOptions& options, Plan* scratch) {
  const CostWeights weights;
  const std::vector<struct iovec> queue =
      MakeSyntheticQueue(batch.sizes, weights.page_size);
  BatchPlan result;
  absl::Status s =
      ForEachChain(queue, options, scratch, [&](const Plan& plan, size_t base) {
        const auto chain_queue = absl::MakeConstSpan(queue).subspan(base);
        for (Op op : plan.ops()) {
          op.first_iov += static_cast<uint32_t>(base);
          result.ops.push_back({op, result.chain_text.size()});
        }
        result.counts += EstimateCost(chain_queue, plan, weights);
        result.chain_text.push_back(DescribeChain(chain_queue, plan));
        return true;
      });
  if (!s.ok()) {
    if (batch.line == 0) return s;
    return Bad(absl::StrCat("line ", batch.line, ": ", s.message()));
  }
  return result;
}

std::string IovRange(const Op& op) {
  if (op.iov_count == 1) return absl::StrCat(op.first_iov);
  return absl::StrCat(op.first_iov, "..", op.first_iov + op.iov_count - 1);
}

uint64_t Sum(absl::Span<const uint64_t> sizes) {
  uint64_t sum = 0;
  for (uint64_t s : sizes) sum += s;
  return sum;
}

void AppendPlanTable(const TraceBatch& batch, size_t index,
                     const BatchPlan& plan, std::string* out) {
  const uint64_t bytes = Sum(batch.sizes);
  absl::StrAppend(
      out, "\nbatch ", index + 1,
      batch.line > 0 ? absl::StrCat(" (line ", batch.line, ")") : "", ": ",
      Count(batch.sizes.size(), "iovec"), ", ", SizeAndBytes(bytes), " -> ",
      Count(plan.ops.size(), "op"), " in ",
      Count(plan.chain_text.size(), "chain"), "\n");
  if (plan.ops.empty()) {
    absl::StrAppend(out, "  nothing to send\n");
    return;
  }
  const size_t chains = plan.chain_text.size();
  for (size_t c = 0; c < chains; ++c) {
    absl::StrAppend(out, "  ",
                    chains > 1 ? absl::StrCat("chain ", c, ": ") : "",
                    plan.chain_text[c], "\n");
  }
  TextTable table("rllrrrl");
  table.AddRow({"chain", "op", "iovecs", "offset", "bytes", "", "linked"});
  for (const PlannedOp& p : plan.ops) {
    table.AddRow({absl::StrCat(p.chain), std::string(OpKindName(p.op.kind)),
                  IovRange(p.op), absl::StrCat(p.op.offset),
                  HumanSize(p.op.bytes), absl::StrCat(p.op.bytes),
                  p.op.linked ? "yes" : "no"});
  }
  out->append("\n");
  table.AppendTo("  ", out);
}

void AppendPlanJson(const TraceBatch& batch, size_t index,
                    const BatchPlan& plan, std::string* out) {
  absl::StrAppend(out, "{\"batch\": ", index + 1);
  if (batch.line > 0) absl::StrAppend(out, ", \"line\": ", batch.line);
  absl::StrAppend(out, ", \"iovecs\": ", batch.sizes.size(),
                  ", \"bytes\": ", Sum(batch.sizes),
                  ", \"chains\": ", plan.chain_text.size(), ", \"ops\": [");
  for (size_t k = 0; k < plan.ops.size(); ++k) {
    const Op& op = plan.ops[k].op;
    absl::StrAppend(out, k > 0 ? ", " : "", "{\"op\": \"", OpKindName(op.kind),
                    "\", \"first_iov\": ", op.first_iov,
                    ", \"iov_count\": ", op.iov_count,
                    ", \"offset\": ", op.offset, ", \"bytes\": ", op.bytes,
                    ", \"linked\": ", op.linked ? "true" : "false",
                    ", \"chain\": ", plan.ops[k].chain, "}");
  }
  absl::StrAppend(out, "]}\n");
}

absl::StatusOr<std::string> RunPlan(const Config& config,
                                    absl::Span<const TraceBatch> batches) {
  std::string out;
  if (config.format == Format::kTable) {
    absl::StrAppend(&out, "options: ", DescribeOptions(config.options, true),
                    "\n");
  }
  Plan scratch;
  PlanCost total;
  size_t chains = 0;
  uint64_t ops = 0;
  for (size_t b = 0; b < batches.size(); ++b) {
    absl::StatusOr<BatchPlan> plan =
        PlanBatch(batches[b], config.options, &scratch);
    if (!plan.ok()) return plan.status();
    total += plan->counts;
    chains += plan->chain_text.size();
    ops += plan->ops.size();
    if (config.format == Format::kJson) {
      AppendPlanJson(batches[b], b, *plan, &out);
    } else {
      AppendPlanTable(batches[b], b, *plan, &out);
    }
  }
  if (config.format == Format::kTable && batches.size() > 1) {
    absl::StrAppend(&out, "\ntotal: ", batches.size(), " batches, ", chains,
                    " chains, ", ops, " ops (", OpCounts(total), "); copied ",
                    HumanSize(total.bytes_copied), " in ", total.iovs_copied,
                    " iovecs, zero-copy ", HumanSize(total.bytes_zero_copy),
                    " in ", total.iovs_zero_copy, " iovecs\n");
  }
  return out;
}

// --- simulate ---------------------------------------------------------------

std::string DescribeWeights(const CostWeights& w) {
  return absl::StrCat(
      "per_op=", w.per_op, " per_zc_op=", w.per_zc_op,
      " per_copy_byte=", w.per_copy_byte, " per_zc_byte=", w.per_zc_byte,
      " per_copy_iov=", w.per_copy_iov, " per_zc_iov=", w.per_zc_iov,
      " per_pinned_page=", w.per_pinned_page, " page_size=", w.page_size);
}

std::string VsBest(double cost, double best) {
  if (cost == best) return "best";
  if (best <= 0) return "-";
  return absl::StrFormat("+%.1f%%", (cost - best) / best * 100);
}

void AppendSimulateTable(const Config& config, absl::string_view input,
                         size_t num_batches, size_t iovecs, uint64_t bytes,
                         const Simulation& sim, std::string* out) {
  const double best = sim.results[sim.best].cost.cost;
  absl::StrAppend(out, "input: ", input, ": ", Count(num_batches, "batch"),
                  ", ", Count(iovecs, "iovec"), ", ", SizeAndBytes(bytes),
                  "\n");
  absl::StrAppend(out, "options: ", DescribeOptions(config.options, false),
                  "\n");
  absl::StrAppend(out, "weights: ", DescribeWeights(config.weights), "\n");
  if (!config.weights_path.empty()) {
    absl::StrAppend(out, "note: weights from ", config.weights_path,
                    " (zcsweep --calibrate writes such a file from "
                    "measurements)\n\n");
  } else {
    absl::StrAppend(
        out, "note: ",
        !config.weights_from_flags
            ? "these are the default weights,"
            : "weights not set by a flag are the defaults,",
        " rough uncalibrated guesses in ns; calibrate before trusting the "
        "ranking (zcsweep --calibrate FILE, then --weights FILE)\n\n");
  }

  // Op kinds no threshold used would only widen the table.
  std::vector<int> kinds;
  for (int k = 0; k < kNumOpKinds; ++k) {
    for (const ThresholdResult& r : sim.results) {
      if (r.cost.ops_by_kind[k] != 0) {
        kinds.push_back(k);
        break;
      }
    }
  }
  TextTable table(
      absl::StrCat("lrrrr", std::string(kinds.size(), 'r'), "rrrrrrrr"));
  std::vector<std::string> header = {"", "threshold", "chains", "ops",
                                     "ops/batch"};
  for (int k : kinds) {
    header.push_back(std::string(OpKindName(static_cast<OpKind>(k))));
  }
  for (const char* h : {"copy bytes", "zc bytes", "copy iovs", "zc iovs",
                        "pinned pages", "est. cost", "vs best"}) {
    header.push_back(h);
  }
  table.AddRow(std::move(header));
  for (size_t i = 0; i < sim.results.size(); ++i) {
    const ThresholdResult& r = sim.results[i];
    std::vector<std::string> row = {
        i == sim.best ? "*" : "", FormatThreshold(r.threshold),
        absl::StrCat(r.chains), absl::StrCat(r.cost.ops()),
        absl::StrFormat("%.2f", static_cast<double>(r.cost.ops()) / r.batches)};
    for (int k : kinds) row.push_back(absl::StrCat(r.cost.ops_by_kind[k]));
    row.push_back(HumanSize(r.cost.bytes_copied));
    row.push_back(HumanSize(r.cost.bytes_zero_copy));
    row.push_back(absl::StrCat(r.cost.iovs_copied));
    row.push_back(absl::StrCat(r.cost.iovs_zero_copy));
    row.push_back(absl::StrCat(r.cost.pages_pinned));
    row.push_back(absl::StrFormat("%.0f", r.cost.cost));
    row.push_back(VsBest(r.cost.cost, best));
    table.AddRow(std::move(row));
  }
  table.AppendTo("", out);
  absl::StrAppend(out, "\nbest (* above, lowest estimated cost): threshold ",
                  FormatThreshold(sim.results[sim.best].threshold), "\n");
}

void AppendSimulateJson(const Config& config, absl::string_view input,
                        size_t num_batches, size_t iovecs, uint64_t bytes,
                        const Simulation& sim, std::string* out) {
  const PlanOptions& o = config.options;
  const CostWeights& w = config.weights;
  absl::StrAppend(out, "{\"input\": ", JsonString(input),
                  ", \"batches\": ", num_batches, ", \"iovecs\": ", iovecs,
                  ", \"bytes\": ", bytes, ",\n");
  absl::StrAppend(out, " \"options\": {\"copy_op\": \"", CopyOpName(o.copy_op),
                  "\", \"max_iovs_per_op\": ", o.max_iovs_per_op,
                  ", \"max_bytes_per_op\": ", o.max_bytes_per_op,
                  ", \"max_ops_per_chain\": ", o.max_ops_per_chain,
                  ", \"zc_gap_bytes\": ", o.zc_gap_bytes, "},\n");
  absl::StrAppend(out, " \"weights\": {\"per_op\": ", w.per_op,
                  ", \"per_zc_op\": ", w.per_zc_op,
                  ", \"per_copy_byte\": ", w.per_copy_byte,
                  ", \"per_zc_byte\": ", w.per_zc_byte,
                  ", \"per_copy_iov\": ", w.per_copy_iov,
                  ", \"per_zc_iov\": ", w.per_zc_iov,
                  ", \"per_pinned_page\": ", w.per_pinned_page,
                  ", \"page_size\": ", w.page_size, ", \"defaults\": ",
                  !config.weights_from_flags && config.weights_path.empty()
                      ? "true"
                      : "false",
                  "},\n");
  absl::StrAppend(out, " \"results\": [\n");
  for (size_t i = 0; i < sim.results.size(); ++i) {
    const ThresholdResult& r = sim.results[i];
    const PlanCost& c = r.cost;
    absl::StrAppend(
        out, "  {\"threshold\": ", JsonThreshold(r.threshold),
        ", \"chains\": ", r.chains, ", \"ops\": ", c.ops(),
        ", \"ops_per_batch\": ",
        absl::StrFormat("%.3f", static_cast<double>(c.ops()) / r.batches),
        ", \"ops_by_kind\": {");
    for (int k = 0; k < kNumOpKinds; ++k) {
      absl::StrAppend(out, k > 0 ? ", " : "", "\"",
                      OpKindName(static_cast<OpKind>(k)),
                      "\": ", c.ops_by_kind[k]);
    }
    absl::StrAppend(out, "}, \"bytes_copied\": ", c.bytes_copied,
                    ", \"bytes_zero_copy\": ", c.bytes_zero_copy,
                    ", \"iovs_copied\": ", c.iovs_copied,
                    ", \"iovs_zero_copy\": ", c.iovs_zero_copy,
                    ", \"pages_pinned\": ", c.pages_pinned,
                    ", \"cost\": ", absl::StrFormat("%.1f", c.cost),
                    ", \"best\": ", i == sim.best ? "true" : "false", "}",
                    i + 1 < sim.results.size() ? "," : "", "\n");
  }
  absl::StrAppend(out, " ],\n \"best_threshold\": ",
                  JsonThreshold(sim.results[sim.best].threshold), "}\n");
}

absl::StatusOr<std::string> RunSimulate(const Config& config,
                                        absl::Span<const TraceBatch> batches) {
  std::vector<uint64_t> thresholds = config.thresholds;
  if (thresholds.empty()) thresholds = *ParseThresholdList(kDefaultThresholds);
  absl::StatusOr<Simulation> sim =
      Simulate(batches, thresholds, config.options, config.weights);
  if (!sim.ok()) {
    if (!config.has_trace) return sim.status();
    return Bad(absl::StrCat(config.trace_path, ": ", sim.status().message()));
  }
  size_t iovecs = 0;
  uint64_t bytes = 0;
  for (const TraceBatch& batch : batches) {
    iovecs += batch.sizes.size();
    bytes += Sum(batch.sizes);
  }
  const std::string input =
      config.has_trace ? config.trace_path : "command line";
  std::string out;
  if (config.format == Format::kJson) {
    AppendSimulateJson(config, input, batches.size(), iovecs, bytes, *sim,
                       &out);
  } else {
    AppendSimulateTable(config, input, batches.size(), iovecs, bytes, *sim,
                        &out);
  }
  return out;
}

absl::StatusOr<std::string> Run(absl::Span<const std::string> args) {
  if (args.empty()) return Bad("no command given; see zcplan --help");
  const absl::string_view command = args[0];
  if (command == "help" || IsHelp(command)) return ZcplanUsage();
  Config config;
  if (command == "plan") {
    config.command = Command::kPlan;
  } else if (command == "simulate") {
    config.command = Command::kSimulate;
  } else {
    return Bad(absl::StrCat("unknown command '", command,
                            "' (plan, simulate or help)"));
  }
  const absl::Span<const std::string> rest = args.subspan(1);
  for (const std::string& arg : rest) {
    if (arg == "--") break;
    if (IsHelp(arg)) return ZcplanUsage();
  }
  if (absl::Status s = ParseFlags(rest, config); !s.ok()) return s;
  if (!config.weights_path.empty()) {
    if (config.weights_from_flags) {
      return Bad(absl::StrCat("give --weights ", config.weights_path,
                              " or --per-*/--page-size flags, not both"));
    }
    absl::StatusOr<std::string> text =
        ReadFile(config.weights_path, "weights file");
    if (!text.ok())
      return Bad(absl::StrCat("--weights: ", text.status().message()));
    absl::StatusOr<CostWeights> weights = ParseCostWeights(*text);
    if (!weights.ok()) {
      return Bad(absl::StrCat("--weights: ", config.weights_path, ": ",
                              weights.status().message()));
    }
    config.weights = *weights;
  }
  if (absl::Status s = ValidatePlanOptions(config.options); !s.ok()) return s;
  absl::StatusOr<std::vector<TraceBatch>> batches = LoadBatches(config);
  if (!batches.ok()) return batches.status();
  if (absl::Status s =
          CheckTraceWork(*batches, config.options, kDefaultMaxTraceOps);
      !s.ok()) {
    return Bad(absl::StrCat(config.has_trace ? config.trace_path + ": " : "",
                            s.message(),
                            "; use smaller sizes or a larger --max-bytes"));
  }
  return config.command == Command::kPlan ? RunPlan(config, *batches)
                                          : RunSimulate(config, *batches);
}

}  // namespace

std::string ZcplanUsage() {
  const PlanOptions d;
  return absl::StrFormat(
      R"(usage: zcplan plan     [flags] (SIZE... | --trace FILE)
       zcplan simulate [flags] (SIZE... | --trace FILE)
       zcplan help | zcplan --help | zcplan COMMAND --help

Shows how the size-aware planner splits a batch of send buffers into linked
io_uring ops: runs of small buffers are coalesced into one copying op, runs of
buffers at or above the threshold go into one zero-copy op, in order.

  zcplan plan --threshold=16K 4K 4K 16K 32K 2K
    -> writev[4K,4K] -> sendmsg_zc[16K,32K] -> send[2K]

Commands:
  plan       print the chains planned for each batch
  simulate   plan every batch under several thresholds and rank them with
             the cost model

Input (both commands):
  SIZE...             one batch: bytes, or with a K, M or G suffix (4K, 1M);
                      commas or spaces separate sizes
  --trace FILE        a trace file: one batch per line, sizes separated by
                      spaces or commas, '#' starts a comment

Planner options (both commands):
  --threshold SIZE    (plan) buffers of at least SIZE go zero-copy; 0 sends
                      all, 'never' none zero-copy [%s]
  --copy-op OP        writev or sendmsg: the op for several small buffers [%s]
  --max-iovs N        iovecs per op, 1..%d [%d]
  --max-bytes SIZE    bytes per op, 1..%d [%d]
  --max-ops N         ops per chain (one submit), 1..%d [%d]; the rest of a
                      batch goes into further chains
  --gap SIZE          gap knob: small buffers totalling at most SIZE between
                      two zero-copy buffers join the zero-copy op; 0 is off
                      [%d]
  --format FORMAT     table or json [table]

Simulate options:
  --thresholds LIST   thresholds to compare, comma-separated: sizes, 'never',
                      or A..B for A, 2A, 4A, ... up to B [%s]
  --per-op X  --per-zc-op X  --per-copy-byte X  --per-zc-byte X
  --per-copy-iov X  --per-zc-iov X  --per-pinned-page X  --page-size SIZE
                      cost weights (see planner/cost.h); the defaults are
                      rough, uncalibrated guesses in nanoseconds
  --weights FILE      cost weights from a file, one 'name value' per line,
                      as zcsweep --calibrate writes it

Flags take their value as --flag=VALUE or --flag VALUE; '--' ends the flags.

Output:
  plan, table       per batch, a one-line summary per chain, then one row per
                    op: chain, op, iovec range, offset into the first iovec,
                    bytes, linked to the next op
  plan, json        JSON Lines: one object per batch, one per line:
                    {"batch": 1, "iovecs": 5, "bytes": 59392, "chains": 1,
                     "ops": [{"op": "writev", "first_iov": 0, "iov_count": 2,
                       "offset": 0, "bytes": 8192, "linked": true,
                       "chain": 0}, ...]}
                    ("line" is added with --trace; first_iov counts from the
                    batch's first buffer, also when a batch takes several
                    chains)
  simulate, table   per threshold: chains, ops (by kind, per batch), bytes and
                    iovecs copied vs zero-copy, pages pinned, estimated cost;
                    the best (lowest cost) is marked '*'
  simulate, json    one object: "input", "options", "weights", "results"
                    (one per threshold, "threshold" is a number or "never"),
                    "best_threshold"

Exit status: 0 on success; 2 on bad input, with one line on stderr and
nothing on stdout.
)",
      FormatThreshold(d.zc_threshold), CopyOpName(d.copy_op), kMaxIovsPerOp,
      d.max_iovs_per_op, kMaxBytesPerOp, d.max_bytes_per_op, kMaxOpsPerChain,
      d.max_ops_per_chain, d.zc_gap_bytes, kDefaultThresholds);
}

int RunZcplan(absl::Span<const std::string> args, std::ostream& out,
              std::ostream& err) {
  absl::StatusOr<std::string> output = Run(args);
  if (!output.ok()) {
    // One line, whatever the arguments held.
    std::string message(output.status().message());
    std::replace_if(
        message.begin(), message.end(),
        [](char c) { return c == '\n' || c == '\r'; }, ' ');
    err << "zcplan: " << message << "\n";
    return kZcplanBadInput;
  }
  out << *output;
  return kZcplanOk;
}

}  // namespace zcplan
