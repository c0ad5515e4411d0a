// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tools/zcplan_cli.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/functional/function_ref.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "zcplan/planner/cost.h"
#include "zcplan/planner/describe.h"
#include "zcplan/planner/flag_types.h"
#include "zcplan/planner/planner.h"
#include "zcplan/planner/simulate.h"
#include "zcplan/planner/strace_import.h"
#include "zcplan/planner/trace.h"
#include "zcplan/tools/cli_io.h"
#include "zcplan/tools/flags.h"
#include "zcplan/tools/json.h"

namespace zcplan {
namespace {

// A cost weight: a number in 0..kMaxCostWeight, so that costs stay finite.
struct Weight {
  double value = 0;
};

// The value as given, in quotes, at most 200 bytes of it: the flag parser
// escapes the whole message.
std::string Quoted(absl::string_view text) {
  constexpr size_t kMaxQuotedBytes = 200;
  if (text.size() <= kMaxQuotedBytes) return absl::StrCat("'", text, "'");
  return absl::StrCat("'", text.substr(0, kMaxQuotedBytes), "...(", text.size(),
                      " bytes)'");
}

bool AbslParseFlag(absl::string_view text, Weight* weight, std::string* error) {
  if (!ParseDecimal(text, &weight->value) ||
      !(weight->value >= 0 &&
        weight->value <= kMaxCostWeight)) {  // Also refuses NaN.
    *error = absl::StrCat(
        "bad weight ", Quoted(text), ": expected a number in 0..",
        static_cast<uint64_t>(kMaxCostWeight), " (see planner/cost.h)");
    return false;
  }
  return true;
}

// Exact (the shortest text that reads back as the same double), so the
// default a flag is reset to is the default.
std::string AbslUnparseFlag(Weight weight) { return JsonNumber(weight.value); }

}  // namespace
}  // namespace zcplan

// plan and simulate.
ABSL_FLAG(std::string, trace, "", "a trace file: one batch per line");
ABSL_FLAG(std::string, format, "table", "table or json");
ABSL_FLAG(zcplan::CopyOp, copy_op, zcplan::PlanOptions().copy_op,
          "writev or sendmsg: the op for several small buffers");
ABSL_FLAG(zcplan::WholeNumber, max_iovs,
          {zcplan::PlanOptions().max_iovs_per_op}, "iovecs per op");
ABSL_FLAG(zcplan::ByteSize, max_bytes, {zcplan::PlanOptions().max_bytes_per_op},
          "bytes per op");
ABSL_FLAG(zcplan::WholeNumber, max_ops,
          {zcplan::PlanOptions().max_ops_per_chain}, "ops per chain");
ABSL_FLAG(zcplan::ByteSize, gap, {zcplan::PlanOptions().zc_gap_bytes},
          "the gap knob, in bytes; 0 is off");
// plan.
ABSL_FLAG(zcplan::Threshold, threshold, {zcplan::PlanOptions().zc_threshold},
          "buffers of at least this size go zero-copy");
// simulate.
ABSL_FLAG(zcplan::ThresholdList, thresholds, {},
          "thresholds to compare; empty: the default list");
ABSL_FLAG(std::string, weights, "", "a cost weights file");
ABSL_FLAG(zcplan::Weight, per_op, {zcplan::CostWeights().per_op},
          "cost weight");
ABSL_FLAG(zcplan::Weight, per_zc_op, {zcplan::CostWeights().per_zc_op},
          "cost weight");
ABSL_FLAG(zcplan::Weight, per_copy_byte, {zcplan::CostWeights().per_copy_byte},
          "cost weight");
ABSL_FLAG(zcplan::Weight, per_zc_byte, {zcplan::CostWeights().per_zc_byte},
          "cost weight");
ABSL_FLAG(zcplan::Weight, per_copy_iov, {zcplan::CostWeights().per_copy_iov},
          "cost weight");
ABSL_FLAG(zcplan::Weight, per_zc_iov, {zcplan::CostWeights().per_zc_iov},
          "cost weight");
ABSL_FLAG(zcplan::Weight, per_pinned_page,
          {zcplan::CostWeights().per_pinned_page}, "cost weight");
ABSL_FLAG(zcplan::ByteSize, page_size, {zcplan::CostWeights().page_size},
          "the page size of the cost model");
// import.
ABSL_FLAG(std::string, sizes, "sent", "sent or requested");
ABSL_FLAG(bool, assume_sockets, false,
          "take unannotated write/writev descriptors for sockets");
ABSL_FLAG(zcplan::WholeNumber, connection, {0},
          "only this connection (1-based); 0: all");
ABSL_FLAG(std::string, order, "connection", "connection or time");
ABSL_FLAG(bool, summary, false, "only the report, no batches");

namespace zcplan {
namespace {

constexpr absl::string_view kDefaultThresholds = "1K..256K,never";

enum class Command { kPlan, kSimulate, kImport };
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
  size_t sizes_before_dashes = 0;  // How many of them came before '--'.
  // import.
  StraceImportOptions import;
  uint32_t connection = 0;  // 0: every connection.
  bool by_time = false;     // --order=time
  bool summary_only = false;
};

absl::Status Bad(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

// --- Flags ------------------------------------------------------------------

constexpr absl::string_view kPlanFlags[] = {
    "trace",    "format",  "threshold", "copy-op",
    "max-iovs", "max-ops", "max-bytes", "gap"};
constexpr absl::string_view kSimulateFlags[] = {
    "trace",       "format",       "thresholds", "copy-op",
    "max-iovs",    "max-ops",      "max-bytes",  "gap",
    "weights",     "per-op",       "per-zc-op",  "per-copy-byte",
    "per-zc-byte", "per-copy-iov", "per-zc-iov", "per-pinned-page",
    "page-size"};
constexpr absl::string_view kImportFlags[] = {"sizes", "assume-sockets",
                                              "connection", "order", "summary"};

absl::string_view CommandName(Command command) {
  switch (command) {
    case Command::kPlan:
      return "plan";
    case Command::kSimulate:
      return "simulate";
    case Command::kImport:
      return "import";
  }
  return "plan";
}

bool IsHelp(absl::string_view arg) { return arg == "--help" || arg == "-h"; }

// A negative number is a (bad) size for ParseSize to reject, not a flag.
bool LooksLikeFlag(absl::string_view arg) {
  return arg.size() > 1 && arg[0] == '-' && !absl::ascii_isdigit(arg[1]);
}

bool Given(const ParsedFlags& parsed, absl::string_view name) {
  return std::find(parsed.given.begin(), parsed.given.end(), name) !=
         parsed.given.end();
}

// Copies the parsed flags into `c` (called inside ParseFlags, while they are
// set) and checks what one flag's parser cannot.
absl::Status ReadFlags(const ParsedFlags& parsed, Config& c) {
  c.sizes = parsed.positional;
  c.sizes_before_dashes = parsed.positional_before_dashes;
  if (c.command == Command::kImport) {
    const std::string sizes = absl::GetFlag(FLAGS_sizes);
    if (sizes == "sent") {
      c.import.sizes = ImportSizes::kSent;
    } else if (sizes == "requested") {
      c.import.sizes = ImportSizes::kRequested;
    } else {
      return Bad(absl::StrCat("--sizes: unknown sizes ", QuoteForMessage(sizes),
                              " (sent or requested)"));
    }
    const std::string order = absl::GetFlag(FLAGS_order);
    if (order != "connection" && order != "time") {
      return Bad(absl::StrCat("--order: unknown order ", QuoteForMessage(order),
                              " (connection or time)"));
    }
    c.by_time = order == "time";
    c.import.assume_sockets = absl::GetFlag(FLAGS_assume_sockets);
    c.connection = absl::GetFlag(FLAGS_connection).value;
    c.summary_only = absl::GetFlag(FLAGS_summary);
    // Connections count from 1 (0, the default, is every connection).
    return FirstFailedCheck(
        {{"connection", Given(parsed, "connection")
                            ? CountInRange(c.connection, 1, UINT32_MAX)
                            : absl::OkStatus()}});
  }
  c.has_trace = Given(parsed, "trace");
  c.trace_path = absl::GetFlag(FLAGS_trace);
  const std::string format = absl::GetFlag(FLAGS_format);
  if (format == "table") {
    c.format = Format::kTable;
  } else if (format == "json") {
    c.format = Format::kJson;
  } else {
    return Bad(absl::StrCat("--format: unknown format ",
                            QuoteForMessage(format), " (table or json)"));
  }
  c.options.copy_op = absl::GetFlag(FLAGS_copy_op);
  c.options.max_iovs_per_op = absl::GetFlag(FLAGS_max_iovs).value;
  c.options.max_ops_per_chain = absl::GetFlag(FLAGS_max_ops).value;
  c.options.max_bytes_per_op = absl::GetFlag(FLAGS_max_bytes).bytes;
  c.options.zc_gap_bytes = absl::GetFlag(FLAGS_gap).bytes;
  if (c.command == Command::kPlan) {
    c.options.zc_threshold = absl::GetFlag(FLAGS_threshold).bytes;
    return absl::OkStatus();
  }
  c.thresholds = absl::GetFlag(FLAGS_thresholds).bytes;
  if (Given(parsed, "thresholds") && c.thresholds.empty()) {
    // "" reads as the empty list (the default); given, it is a mistake.
    return Bad(absl::StrCat("--thresholds: ",
                            ParseThresholdList("").status().message()));
  }
  c.weights_path = absl::GetFlag(FLAGS_weights);
  if (Given(parsed, "weights") && c.weights_path.empty()) {
    return Bad("--weights: empty path");
  }
  CostWeights& w = c.weights;
  w.per_op = absl::GetFlag(FLAGS_per_op).value;
  w.per_zc_op = absl::GetFlag(FLAGS_per_zc_op).value;
  w.per_copy_byte = absl::GetFlag(FLAGS_per_copy_byte).value;
  w.per_zc_byte = absl::GetFlag(FLAGS_per_zc_byte).value;
  w.per_copy_iov = absl::GetFlag(FLAGS_per_copy_iov).value;
  w.per_zc_iov = absl::GetFlag(FLAGS_per_zc_iov).value;
  w.per_pinned_page = absl::GetFlag(FLAGS_per_pinned_page).value;
  w.page_size = absl::GetFlag(FLAGS_page_size).bytes;
  c.weights_from_flags = std::any_of(
      parsed.given.begin(), parsed.given.end(), [](absl::string_view name) {
        return absl::StartsWith(name, "per-") || name == "page-size";
      });
  return absl::OkStatus();
}

absl::Status ParseCommandFlags(absl::Span<const std::string> args,
                               Config& config) {
  absl::Span<const absl::string_view> allowed;
  switch (config.command) {
    case Command::kPlan:
      allowed = kPlanFlags;
      break;
    case Command::kSimulate:
      allowed = kSimulateFlags;
      break;
    case Command::kImport:
      allowed = kImportFlags;
      break;
  }
  const std::string context =
      absl::StrCat(" for '", CommandName(config.command), "'");
  return ParseFlags(args, allowed, {"zcplan", context, /*positional=*/true},
                    [&](const ParsedFlags& parsed) {
                      return ReadFlags(parsed, config);
                    })
      .status();
}

// The batches to plan: the command line's sizes, or a trace file read line
// by line (twice for `plan`: a check pass, then the output pass).
class Input {
 public:
  Input() = default;
  Input(const Input&) = delete;
  Input& operator=(const Input&) = delete;
  ~Input() {
    if (fd_ >= 0) close(fd_);
  }

  // Opens the trace file, or parses the command line's sizes.
  absl::Status Open(const Config& config) {
    if (config.has_trace && !config.sizes.empty()) {
      return Bad(absl::StrCat("give sizes or --trace, not both (got ",
                              QuoteForMessage(config.sizes[0]), " and --trace ",
                              QuoteForMessage(config.trace_path), ")"));
    }
    if (config.has_trace) {
      absl::StatusOr<RegularFile> file =
          OpenRegularFile(config.trace_path, "trace file", kMaxTraceFileBytes);
      if (!file.ok()) return file.status();
      fd_ = file->fd;
      name_ = absl::StrCat("trace file ", QuoteForMessage(config.trace_path));
      return absl::OkStatus();
    }
    if (config.sizes.empty()) {
      return Bad(absl::StrCat("no sizes given: use zcplan ",
                              CommandName(config.command),
                              " SIZE... or --trace FILE"));
    }
    std::vector<uint64_t>& sizes = command_line_.sizes;
    for (size_t k = 0; k < config.sizes.size(); ++k) {
      absl::StatusOr<std::vector<uint64_t>> some =
          ParseSizeList(config.sizes[k]);
      if (some.ok()) {
        sizes.insert(sizes.end(), some->begin(), some->end());
        continue;
      }
      if (k >= config.sizes_before_dashes && LooksLikeFlag(config.sizes[k])) {
        return Bad(absl::StrCat(
            "bad size ", QuoteForMessage(config.sizes[k]),
            ": it comes after '--', which ends the flags, so it is taken as a "
            "size; give flags before '--'"));
      }
      if (absl::StrContains(some.status().message(), "no sizes given")) {
        continue;  // An argument of separators only, e.g. ",".
      }
      return some.status();
    }
    if (sizes.empty()) return Bad("no sizes given");
    return absl::OkStatus();
  }

  bool is_trace() const { return fd_ >= 0; }
  const std::string& name() const { return name_; }

  // Calls `fn(batch, index)` for each batch in order, stopping at the first
  // error (of reading, parsing, or `fn`). Errors of the trace name it. If
  // given, `*fingerprint` is set to a hash of every line read (for plan to
  // tell whether the file changed between its passes).
  absl::Status ForEachBatch(
      absl::FunctionRef<absl::Status(const TraceBatch&, size_t)> fn,
      size_t* fingerprint = nullptr) const {
    if (fingerprint != nullptr) *fingerprint = 0;
    if (!is_trace()) return fn(command_line_, 0);
    LineReader reader(fd_, kMaxTraceFileBytes, kMaxTraceLineBytes);
    TraceParser parser;
    TraceBatch batch;
    absl::string_view line;
    for (;;) {
      absl::StatusOr<bool> more = reader.Next(&line);
      if (!more.ok()) return Named(more.status());
      if (!*more) break;
      if (fingerprint != nullptr) {
        *fingerprint = absl::HashOf(*fingerprint, line);
      }
      absl::StatusOr<bool> got = parser.ParseLine(line, &batch);
      if (!got.ok()) return Named(got.status());
      if (!*got) continue;
      if (absl::Status s = fn(batch, parser.batches() - 1); !s.ok()) {
        return Named(s);
      }
    }
    if (absl::Status s = parser.Finish(); !s.ok()) return Named(s);
    return absl::OkStatus();
  }

 private:
  absl::Status Named(const absl::Status& s) const {
    return absl::Status(s.code(), absl::StrCat(name_, ": ", s.message()));
  }

  int fd_ = -1;
  std::string name_;
  TraceBatch command_line_;  // Line 0.
};

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

// One line of a table: each cell padded to its column's `width`, aligned by
// `align` ('l' or 'r' per column), two spaces apart, trailing blanks cut.
void AppendTableLine(absl::string_view align, absl::Span<const size_t> width,
                     absl::string_view indent,
                     absl::Span<const std::string> cells, std::string* out) {
  std::string line(indent);
  for (size_t c = 0; c < cells.size(); ++c) {
    const std::string pad(width[c] - cells[c].size(), ' ');
    if (c > 0) line += "  ";
    line += align[c] == 'r' ? pad + cells[c] : cells[c] + pad;
  }
  absl::StrAppend(out, absl::StripTrailingAsciiWhitespace(line), "\n");
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
      AppendTableLine(align_, width, indent, row, out);
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

// One batch's plan, held while it is written out: its memory is that of one
// batch, never of the whole trace.
struct BatchPlan {
  std::vector<PlannedOp> ops;
  std::vector<std::string> chain_text;  // DescribeChain, one per chain.
  PlanCost counts;  // Only the counts are used: weights are not plan's topic.
};

absl::Status PlanBatch(const TraceBatch& batch, const PlanOptions& options,
                       Plan* scratch, std::vector<struct iovec>* queue,
                       BatchPlan* result) {
  const CostWeights weights;
  *queue = MakeSyntheticQueue(batch.sizes, weights.page_size);
  result->ops.clear();
  result->chain_text.clear();
  result->counts = PlanCost();
  const absl::Span<const struct iovec> all = *queue;
  absl::Status s =
      ForEachChain(all, options, scratch, [&](const Plan& plan, size_t base) {
        const auto chain_queue = all.subspan(base);
        for (Op op : plan.ops()) {
          op.first_iov += static_cast<uint32_t>(base);
          result->ops.push_back({op, result->chain_text.size()});
        }
        result->counts += EstimateCost(chain_queue, plan, weights);
        result->chain_text.push_back(DescribeChain(chain_queue, plan));
        return true;
      });
  if (!s.ok() && batch.line > 0) {
    return Bad(absl::StrCat("line ", batch.line, ": ", s.message()));
  }
  return s;
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

constexpr absl::string_view kOpTableAlign = "rllrrrl";

std::array<std::string, 7> OpRow(const PlannedOp& p) {
  return {absl::StrCat(p.chain),
          std::string(OpKindName(p.op.kind)),
          IovRange(p.op),
          absl::StrCat(p.op.offset),
          HumanSize(p.op.bytes),
          absl::StrCat(p.op.bytes),
          p.op.linked ? "yes" : "no"};
}

// A chain's one-line summary, cut after whole ops at about 1000 characters
// (a chain may hold 32768 ops): the op rows below give every op in full.
std::string ChainSummary(absl::string_view text, size_t ops) {
  constexpr size_t kMaxSummaryChars = 1000;
  constexpr absl::string_view kArrow = " -> ";
  if (text.size() <= kMaxSummaryChars) return std::string(text);
  absl::string_view kept = text.substr(0, kMaxSummaryChars);
  const size_t cut = kept.rfind(kArrow);
  size_t kept_ops = 1;  // Without an arrow: part of the first op.
  std::string summary;
  if (cut == absl::string_view::npos) {
    summary = absl::StrCat(kept, "...]");
  } else {
    kept = kept.substr(0, cut);
    for (size_t at = kept.find(kArrow); at != absl::string_view::npos;
         at = kept.find(kArrow, at + kArrow.size())) {
      ++kept_ops;
    }
    summary = std::string(kept);
  }
  if (ops > kept_ops) {
    absl::StrAppend(&summary, kArrow, "... (", ops - kept_ops,
                    " more ops, in the rows below)");
  }
  return summary;
}

// Writes the batch as it is planned: the text of one op at a time, so that a
// batch of many ops never exists as one string.
void WritePlanTable(const TraceBatch& batch, size_t index,
                    const BatchPlan& plan, std::ostream& out) {
  const uint64_t bytes = Sum(batch.sizes);
  std::string text = absl::StrCat(
      "\nbatch ", index + 1,
      batch.line > 0 ? absl::StrCat(" (line ", batch.line, ")") : "", ": ",
      Count(batch.sizes.size(), "iovec"), ", ", SizeAndBytes(bytes), " -> ",
      Count(plan.ops.size(), "op"), " in ",
      Count(plan.chain_text.size(), "chain"), "\n");
  if (plan.ops.empty()) {
    absl::StrAppend(&text, "  nothing to send\n");
    out << text;
    return;
  }
  const size_t chains = plan.chain_text.size();
  std::vector<size_t> ops_in_chain(chains, 0);
  for (const PlannedOp& p : plan.ops) ++ops_in_chain[p.chain];
  for (size_t c = 0; c < chains; ++c) {
    absl::StrAppend(&text, "  ",
                    chains > 1 ? absl::StrCat("chain ", c, ": ") : "",
                    ChainSummary(plan.chain_text[c], ops_in_chain[c]), "\n");
    out << text;
    text.clear();
  }
  const std::array<std::string, 7> header = {"chain", "op", "iovecs", "offset",
                                             "bytes", "",   "linked"};
  std::array<size_t, 7> width{};
  for (size_t c = 0; c < width.size(); ++c) width[c] = header[c].size();
  for (const PlannedOp& p : plan.ops) {
    const std::array<std::string, 7> row = OpRow(p);
    for (size_t c = 0; c < width.size(); ++c) {
      width[c] = std::max(width[c], row[c].size());
    }
  }
  text = "\n";
  AppendTableLine(kOpTableAlign, width, "  ", header, &text);
  out << text;
  for (const PlannedOp& p : plan.ops) {
    text.clear();
    AppendTableLine(kOpTableAlign, width, "  ", OpRow(p), &text);
    out << text;
  }
}

// One JSON Lines object per batch, written op by op.
void WritePlanJson(const TraceBatch& batch, size_t index, const BatchPlan& plan,
                   std::ostream& out) {
  std::string text = absl::StrCat("{\"batch\": ", index + 1);
  if (batch.line > 0) absl::StrAppend(&text, ", \"line\": ", batch.line);
  absl::StrAppend(&text, ", \"iovecs\": ", batch.sizes.size(),
                  ", \"bytes\": ", Sum(batch.sizes),
                  ", \"chains\": ", plan.chain_text.size(), ", \"ops\": [");
  out << text;
  for (size_t k = 0; k < plan.ops.size(); ++k) {
    const Op& op = plan.ops[k].op;
    text.clear();
    absl::StrAppend(&text, k > 0 ? ", " : "", "{\"op\": \"",
                    OpKindName(op.kind), "\", \"first_iov\": ", op.first_iov,
                    ", \"iov_count\": ", op.iov_count,
                    ", \"offset\": ", op.offset, ", \"bytes\": ", op.bytes,
                    ", \"linked\": ", op.linked ? "true" : "false",
                    ", \"chain\": ", plan.ops[k].chain, "}");
    out << text;
  }
  out << "]}\n";
}

// Bad input; over the work bound, also what to change: fewer or smaller
// batches always help, larger ops only while they can still grow.
absl::Status BadInput(const absl::Status& s, const Config& config) {
  if (!absl::IsResourceExhausted(s)) return Bad(s.message());
  std::vector<std::string> larger;
  if (config.options.max_bytes_per_op < kMaxBytesPerOp) {
    larger.push_back("--max-bytes");
  }
  if (config.options.max_iovs_per_op < kMaxIovsPerOp) {
    larger.push_back("--max-iovs");
  }
  return Bad(absl::StrCat(
      s.message(), "; ", CommandName(config.command),
      " fewer or smaller batches",
      larger.empty()
          ? ""
          : absl::StrCat(", or a larger ", absl::StrJoin(larger, " or "))));
}

// Failures after output began: the trace changed between the check pass and
// the output pass, or the output could not be written.
absl::Status Failed(absl::string_view message) {
  return absl::AbortedError(message);
}

// Checks the whole input first (every line parses, the work is bounded), so
// that bad input prints nothing; then plans and writes batch by batch.
absl::Status RunPlan(const Config& config, const Input& input,
                     std::ostream& out) {
  TraceWorkLimit check(config.options, kDefaultMaxTraceOps);
  size_t checked = 0;  // Fingerprint of the lines the check pass read.
  if (absl::Status s = input.ForEachBatch(
          [&](const TraceBatch& batch, size_t index) {
            return check.Add(batch, index);
          },
          &checked);
      !s.ok()) {
    return BadInput(s, config);
  }

  if (config.format == Format::kTable) {
    out << "options: " << DescribeOptions(config.options, true) << "\n";
  }
  TraceWorkLimit limit(config.options, kDefaultMaxTraceOps);
  Plan scratch;
  std::vector<struct iovec> queue;
  BatchPlan plan;
  PlanCost total;
  size_t batches = 0;
  size_t chains = 0;
  uint64_t ops = 0;
  bool write_failed = false;
  size_t planned = 0;  // Fingerprint of the lines the output pass read.
  absl::Status s = input.ForEachBatch(
      [&](const TraceBatch& batch, size_t index) {
        // The bound again: what is planned is what was checked, even if the
        // file changed in between.
        if (absl::Status s = limit.Add(batch, index); !s.ok()) return s;
        if (absl::Status s =
                PlanBatch(batch, config.options, &scratch, &queue, &plan);
            !s.ok()) {
          return s;
        }
        total += plan.counts;
        chains += plan.chain_text.size();
        ops += plan.ops.size();
        ++batches;
        if (config.format == Format::kJson) {
          WritePlanJson(batch, index, plan, out);
        } else {
          WritePlanTable(batch, index, plan, out);
        }
        write_failed = !out;
        return write_failed ? Failed("cannot write the output")
                            : absl::OkStatus();
      },
      &planned);
  if (write_failed) return Failed("cannot write the output");
  if (!s.ok()) {
    return Failed(absl::StrCat(
        s.message(),
        input.is_trace() ? "; the file changed after it was checked" : "",
        "; the output is incomplete"));
  }
  // Edits that keep the file valid pass both the parser and the bound, and
  // may already be in the output: only the lines themselves tell.
  if (planned != checked) {
    return Failed(
        absl::StrCat(input.name(),
                     ": changed between the check pass and the output pass; "
                     "the output written is unreliable (it may hold batches "
                     "that were never checked), run plan again"));
  }
  if (config.format == Format::kTable && batches > 1) {
    out << absl::StrCat("\ntotal: ", batches, " batches, ", chains, " chains, ",
                        ops, " ops (", OpCounts(total), "); copied ",
                        HumanSize(total.bytes_copied), " in ",
                        total.iovs_copied, " iovecs, zero-copy ",
                        HumanSize(total.bytes_zero_copy), " in ",
                        total.iovs_zero_copy, " iovecs\n");
  }
  out.flush();
  if (!out) return Failed("cannot write the output");
  return absl::OkStatus();
}

// --- simulate ---------------------------------------------------------------

std::string DescribeWeights(const CostWeights& w) {
  return absl::StrCat(
      "per_op=", w.per_op, " per_zc_op=", w.per_zc_op,
      " per_copy_byte=", w.per_copy_byte, " per_zc_byte=", w.per_zc_byte,
      " per_copy_iov=", w.per_copy_iov, " per_zc_iov=", w.per_zc_iov,
      " per_pinned_page=", w.per_pinned_page, " page_size=", w.page_size);
}

// Paths in the table are shown whole up to PATH_MAX, escaped.
constexpr size_t kMaxPathChars = 4096;

std::string VsBest(double cost, double best) {
  if (cost == best) return "best";
  if (best <= 0) return "-";
  return absl::StrFormat("+%.1f%%", (cost - best) / best * 100);
}

void AppendSimulateTable(const Config& config, absl::string_view input,
                         size_t num_batches, size_t iovecs, uint64_t bytes,
                         const Simulation& sim, std::string* out) {
  const double best = sim.results[sim.best].cost.cost;
  // A path is the user's text: escaped, so that it cannot hold terminal
  // control sequences (JSON escapes it its own way).
  absl::StrAppend(out, "input: ",
                  config.has_trace ? EscapeForMessage(input, kMaxPathChars)
                                   : std::string(input),
                  ": ", Count(num_batches, "batch"), ", ",
                  Count(iovecs, "iovec"), ", ", SizeAndBytes(bytes), "\n");
  absl::StrAppend(out, "options: ", DescribeOptions(config.options, false),
                  "\n");
  absl::StrAppend(out, "weights: ", DescribeWeights(config.weights), "\n");
  if (!config.weights_path.empty()) {
    absl::StrAppend(out, "note: weights from ",
                    EscapeForMessage(config.weights_path, kMaxPathChars),
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
  absl::StrAppend(
      out, " \"weights\": {\"per_op\": ", JsonNumber(w.per_op, "%g"),
      ", \"per_zc_op\": ", JsonNumber(w.per_zc_op, "%g"),
      ", \"per_copy_byte\": ", JsonNumber(w.per_copy_byte, "%g"),
      ", \"per_zc_byte\": ", JsonNumber(w.per_zc_byte, "%g"),
      ", \"per_copy_iov\": ", JsonNumber(w.per_copy_iov, "%g"),
      ", \"per_zc_iov\": ", JsonNumber(w.per_zc_iov, "%g"),
      ", \"per_pinned_page\": ", JsonNumber(w.per_pinned_page, "%g"),
      ", \"page_size\": ", w.page_size, ", \"defaults\": ",
      !config.weights_from_flags && config.weights_path.empty() ? "true"
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
        JsonNumber(static_cast<double>(c.ops()) / r.batches, "%.3f"),
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
                    ", \"cost\": ", JsonNumber(c.cost, "%.1f"),
                    ", \"best\": ", i == sim.best ? "true" : "false", "}",
                    i + 1 < sim.results.size() ? "," : "", "\n");
  }
  absl::StrAppend(out, " ],\n \"best_threshold\": ",
                  JsonThreshold(sim.results[sim.best].threshold), "}\n");
}

// One pass over the input, batch by batch; the output is a summary written
// at the end, so bad input found on the way prints nothing.
absl::Status RunSimulate(const Config& config, const Input& input,
                         std::ostream& out) {
  std::vector<uint64_t> thresholds = config.thresholds;
  if (thresholds.empty()) thresholds = *ParseThresholdList(kDefaultThresholds);
  absl::StatusOr<Simulator> sim = Simulator::Create(
      thresholds, config.options, config.weights, kDefaultMaxTraceOps);
  if (!sim.ok()) return sim.status();
  size_t iovecs = 0;
  uint64_t bytes = 0;
  if (absl::Status s =
          input.ForEachBatch([&](const TraceBatch& batch, size_t index) {
            iovecs += batch.sizes.size();
            bytes += Sum(batch.sizes);
            return sim->Add(batch, index);
          });
      !s.ok()) {
    return BadInput(s, config);
  }
  const std::string name =
      config.has_trace ? config.trace_path : "command line";
  std::string text;
  if (config.format == Format::kJson) {
    AppendSimulateJson(config, name, sim->batches(), iovecs, bytes,
                       sim->Result(), &text);
  } else {
    AppendSimulateTable(config, name, sim->batches(), iovecs, bytes,
                        sim->Result(), &text);
  }
  out << text;
  out.flush();
  if (!out) return Failed("cannot write the output");
  return absl::OkStatus();
}

// --- import -----------------------------------------------------------------

// The most connections the report lists one by one.
constexpr size_t kMaxListedConnections = 100;

// The most bytes of a connection's name in the report's table, whose rows are
// all as wide as its widest name; the "# connection N" lines hold it whole.
constexpr size_t kMaxTableNameBytes = 128;  // A TCPv6 name is at most 104.

std::string TableName(absl::string_view name) {
  if (name.size() <= kMaxTableNameBytes) return std::string(name);
  return absl::StrCat(name.substr(0, kMaxTableNameBytes - 3), "...");
}

// The report that heads an imported trace, every line a '#' comment.
std::string ImportReport(const Config& config, absl::string_view capture,
                         const StraceImport& imp) {
  std::string text = absl::StrCat(
      "# zcplan import of capture ", QuoteForMessage(capture), ": sizes ",
      config.import.sizes == ImportSizes::kSent
          ? "as sent (each call's iovecs cut at its return value)"
          : "as requested (each call's iovecs as given)",
      "\n");
  uint64_t unused = 0;
  for (const SkippedLines& s : imp.skipped) unused += s.lines;
  absl::StrAppend(&text, "# ", Count(imp.lines, "line"), ": ", imp.lines_used,
                  " made ", Count(imp.batches, "batch"), " of ",
                  SizeAndBytes(imp.bytes), " in ", Count(imp.iovecs, "iovec"),
                  " on ", Count(imp.connections.size(), "connection"), ", ",
                  Count(imp.short_writes, "short write"), "; ", unused,
                  " not used\n#\n");
  TextTable connections("lrrrrrr");
  connections.AddRow(
      {"connection", "pid", "fd", "batches", "iovecs", "bytes", "short"});
  for (size_t c = 0; c < imp.connections.size() && c < kMaxListedConnections;
       ++c) {
    const ImportedConnection& ic = imp.connections[c];
    connections.AddRow({absl::StrCat(c + 1, " ", TableName(ic.name())),
                        absl::StrCat(ic.pid()), absl::StrCat(ic.fd()),
                        absl::StrCat(ic.batches()), absl::StrCat(ic.iovecs()),
                        HumanSize(ic.bytes()),
                        absl::StrCat(ic.short_writes())});
  }
  connections.AppendTo("#   ", &text);
  if (imp.connections.size() > kMaxListedConnections) {
    absl::StrAppend(&text, "#   ... and ",
                    imp.connections.size() - kMaxListedConnections,
                    " more connections\n");
  }
  if (!imp.skipped.empty()) {
    TextTable skipped("lrr");
    skipped.AddRow({"lines not used", "lines", "first"});
    for (const SkippedLines& s : imp.skipped) {
      skipped.AddRow({absl::StrCat(SkipKindName(s.kind), ": ", s.reason),
                      absl::StrCat(s.lines), absl::StrCat(s.first_line)});
    }
    absl::StrAppend(&text, "#\n");
    skipped.AppendTo("#   ", &text);
  }
  return text;
}

void AppendBatch(absl::Span<const uint64_t> sizes, std::string* out) {
  for (size_t k = 0; k < sizes.size(); ++k) {
    absl::StrAppend(out, k > 0 ? " " : "", FormatSize(sizes[k]));
  }
  out->push_back('\n');
}

// A report line when `plan` or `simulate` could not take what the import
// writes in one pass (the ops bound of kDefaultMaxTraceOps), else "".
std::string WorkNote(const Config& config, const StraceImport& imp) {
  if (config.summary_only) return "";
  // plan's default options, and simulate's default thresholds: the bound
  // depends on the threshold (small and large buffers in turn are more ops).
  std::vector<TraceWorkLimit> limits = {
      TraceWorkLimit(PlanOptions(), kDefaultMaxTraceOps)};
  const std::vector<uint64_t> thresholds =
      *ParseThresholdList(kDefaultThresholds);
  for (uint64_t threshold : thresholds) {
    PlanOptions options;
    options.zc_threshold = threshold;
    limits.emplace_back(options, kDefaultMaxTraceOps);
  }
  TraceBatch batch;
  size_t index = 0;
  for (size_t c = 0; c < imp.connections.size(); ++c) {
    if (config.connection > 0 && c + 1 != config.connection) continue;
    const ImportedConnection& ic = imp.connections[c];
    for (size_t b = 0; b < ic.batches(); ++b) {
      const absl::Span<const uint64_t> sizes = ic.sizes(b);
      batch.sizes.assign(sizes.begin(), sizes.end());
      bool over = false;
      for (TraceWorkLimit& limit : limits) {
        over |= !limit.Add(batch, index).ok();
      }
      ++index;
      if (over) {
        return absl::StrCat(
            "#\n# note: planning this trace may take more than ",
            kDefaultMaxTraceOps,
            " ops, the most zcplan plan and simulate take in one pass: import "
            "one connection (--connection N) or a shorter capture\n");
      }
    }
  }
  return "";
}

// Reads the whole capture, then writes the report and the trace: bad input
// found on the way prints nothing. Memory: the batches (a few words per
// iovec), not the capture's text.
absl::Status RunImport(const Config& config, std::ostream& out) {
  if (config.sizes.size() != 1) {
    return Bad(config.sizes.empty()
                   ? "no capture given: use zcplan import [flags] CAPTURE"
                   : absl::StrCat("give one capture file (got ",
                                  QuoteForMessage(config.sizes[0]), " and ",
                                  QuoteForMessage(config.sizes[1]), ")"));
  }
  const std::string& path = config.sizes[0];
  absl::StatusOr<RegularFile> file =
      OpenRegularFile(path, "capture file", kMaxTraceFileBytes);
  if (!file.ok()) return file.status();
  const std::string name = absl::StrCat("capture file ", QuoteForMessage(path));
  StraceImporter importer(config.import);
  {
    LineReader reader(file->fd, kMaxTraceFileBytes, kMaxTraceLineBytes);
    reader.set_skip_long_lines(true);  // Counted, not fatal: see below.
    const std::string too_long =
        absl::StrCat("longer than ", kMaxTraceLineBytes,
                     " bytes (capture with a smaller strace -s)");
    absl::string_view line;
    absl::Status status;
    for (;;) {
      absl::StatusOr<bool> more = reader.Next(&line);
      if (!more.ok()) {
        status = more.status();
        break;
      }
      if (!*more) break;
      if (reader.last_too_long()) {
        importer.AddUnreadLine(too_long);
      } else {
        importer.AddLine(line);
      }
    }
    close(file->fd);
    if (!status.ok()) {
      return Bad(absl::StrCat(name, ": ", status.message()));
    }
  }
  const StraceImport imp = std::move(importer).Finish();
  if (imp.batches == 0) {
    std::vector<std::string> reasons;
    for (const SkippedLines& s : imp.skipped) {
      if (reasons.size() == 3) {
        reasons.push_back("...");
        break;
      }
      reasons.push_back(
          absl::StrCat(s.lines, " ", SkipKindName(s.kind), ": ", s.reason));
    }
    return Bad(absl::StrCat(
        name, ": no send on a TCP socket in its ", Count(imp.lines, "line"),
        reasons.empty() ? ""
                        : absl::StrCat(" (", absl::StrJoin(reasons, "; "), ")"),
        "; capture with strace -f -yy -e "
        "trace=writev,sendmsg,sendto,write (see zcplan --help)"));
  }
  if (config.connection > imp.connections.size()) {
    return Bad(absl::StrCat("--connection ", config.connection, ": ", name,
                            " has ",
                            Count(imp.connections.size(), "connection")));
  }
  // Written a piece at a time: the trace of a large capture never exists as
  // one string.
  std::string text = ImportReport(config, path, imp);
  absl::StrAppend(&text, WorkNote(config, imp));
  const auto Flush = [&](bool always) {
    if (always || text.size() >= 64 * 1024) {
      out << text;
      text.clear();
    }
  };
  const auto Connection = [&](size_t c) {
    const ImportedConnection& ic = imp.connections[c];
    absl::StrAppend(&text, "\n# connection ", c + 1, ": ", ic.name(), " (pid ",
                    ic.pid(), " fd ", ic.fd(), "), ",
                    Count(ic.batches(), "batch"), "\n");
    for (size_t b = 0; b < ic.batches(); ++b) {
      AppendBatch(ic.sizes(b), &text);
      Flush(false);
    }
  };
  if (config.summary_only) {
    // The report alone.
  } else if (config.connection > 0) {
    Connection(config.connection - 1);
  } else if (config.by_time) {
    absl::StrAppend(&text,
                    "\n# every connection, in the order the calls started\n");
    for (const auto& [c, b] : imp.InCaptureOrder()) {
      AppendBatch(imp.connections[c].sizes(b), &text);
      Flush(false);
    }
  } else {
    for (size_t c = 0; c < imp.connections.size(); ++c) Connection(c);
  }
  Flush(true);
  out.flush();
  if (!out) return Failed("cannot write the output");
  return absl::OkStatus();
}

// Parses and checks everything that can be checked before any output.
absl::StatusOr<Config> ParseConfig(absl::Span<const std::string> args,
                                   bool* help) {
  *help = false;
  if (args.empty()) return Bad("no command given; see zcplan --help");
  const absl::string_view command = args[0];
  Config config;
  if (command == "help" || IsHelp(command)) {
    *help = true;
    return config;
  }
  if (command == "plan") {
    config.command = Command::kPlan;
  } else if (command == "simulate") {
    config.command = Command::kSimulate;
  } else if (command == "import") {
    config.command = Command::kImport;
  } else {
    return Bad(absl::StrCat("unknown command ", QuoteForMessage(command),
                            " (plan, simulate, import or help)"));
  }
  const absl::Span<const std::string> rest = args.subspan(1);
  for (const std::string& arg : rest) {
    if (arg == "--") break;
    if (IsHelp(arg)) {
      *help = true;
      return config;
    }
  }
  if (absl::Status s = ParseCommandFlags(rest, config); !s.ok()) return s;
  if (!config.weights_path.empty()) {
    if (config.weights_from_flags) {
      return Bad(absl::StrCat("give --weights ",
                              QuoteForMessage(config.weights_path),
                              " or --per-*/--page-size flags, not both"));
    }
    absl::StatusOr<CostWeights> weights =
        ReadCostWeightsFile(config.weights_path);
    if (!weights.ok()) {
      return Bad(absl::StrCat("--weights: ", weights.status().message()));
    }
    config.weights = *weights;
  }
  if (absl::Status s = ValidatePlanOptions(config.options); !s.ok()) return s;
  return config;
}

// One line of bounded length, whatever the arguments held: the tool quotes
// what it echoes with QuoteForMessage, but planner/ messages quote sizes and
// lines as given. Control bytes become \xNN (quoted text has none left, so
// nothing is escaped twice), and the line is cut at kMaxErrorChars.
constexpr size_t kMaxErrorChars = 2000;
std::string OneLine(absl::string_view message) {
  std::string line;
  for (const char c : message) {
    if (line.size() >= kMaxErrorChars) {
      absl::StrAppend(&line, "...(", message.size(), " bytes)");
      break;
    }
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      absl::StrAppendFormat(&line, "\\x%02x", u);
    } else {
      line.push_back(c);
    }
  }
  return line;
}

}  // namespace

std::string ZcplanUsage() {
  const PlanOptions d;
  return absl::StrFormat(
      R"(usage: zcplan plan     [flags] (SIZE... | --trace FILE)
       zcplan simulate [flags] (SIZE... | --trace FILE)
       zcplan import   [flags] CAPTURE
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
  import     turn an strace capture of a running server's sends into a
             trace, one batch per call, per connection

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
                      cost weights (see planner/cost.h), each 0..1e9 (so
                      costs stay finite); the defaults are rough,
                      uncalibrated guesses in nanoseconds
  --weights FILE      cost weights from a file, one 'name value' per line,
                      as zcsweep --calibrate writes it

Import (a trace from a server's real sends):
  Capture with
    strace -f -yy -e trace=writev,sendmsg,sendto,write -e signal=none \
           -o CAPTURE -p PID
  -yy is needed to tell TCP sockets from files and pipes and to name each
  connection by its addresses; -f for servers with several threads or
  processes (give -p once per process); add -s N (N at least the most
  iovecs the server writes at once) if it writes more than 32 per call.
  One batch per writev/sendmsg/sendto/send/write call on a TCP socket; a
  call that failed (-1 EAGAIN) or sent 0 bytes makes none. Every other line
  is counted under its reason in the report that heads the trace (calls to
  files, pipes and non-TCP sockets apart), never dropped unseen.
  --sizes WHICH       sent: each call's iovecs cut at its return value, so a
                      short write holds what the kernel took and every byte
                      appears once; requested: the iovecs as given (a short
                      write's rest then appears again in its retry) [sent]
  --order ORDER       connection: each connection's batches together, under a
                      '# connection N' line; time: in the order the calls
                      started [connection]
  --connection N      only connection N, as numbered in the report
  --assume-sockets    import write/writev on descriptors strace did not
                      annotate (a capture without -y), as sockets
  --summary           only the report, no batches

Flags take their value as --flag=VALUE or --flag VALUE (a switch such as
--summary takes none); '--' ends the flags.

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
  import            a trace on stdout (for --trace; redirect it to a file):
                    a '#' report (lines, batches, bytes, short writes, the
                    connections, the lines not used by reason with the first
                    of each), then one batch per line

Limits (checked before any output):
  --trace, --weights and CAPTURE must name regular files: a directory,
  FIFO, device or socket is refused at once. A capture is read like a
  trace (the limits below), except that a line over the line limit is
  counted as unusable; one with no send on a TCP socket is bad input; an
  import that plan or simulate could not take whole (the ops limit below)
  says so in its report. A trace file holds at most %s bytes
  (1 GiB), each line at most %s bytes (1 MiB); a weights file at most
  %s bytes (1 MiB), and it must name at least one weight. Planning may
  take at most %s ops per pass over the input (plan: one pass; simulate:
  one per threshold), counted by an upper bound: per batch, 2 per
  --max-bytes of data, 1 per --max-iovs iovecs, and 1 per run of non-empty
  iovecs on one side of the threshold.

plan writes each batch as soon as it is planned, so memory stays that of one
batch; it reads the trace file twice (a check pass, then the output pass).

Exit status: 0 on success; 2 on bad input, with one line on stderr and
nothing on stdout; 1 if the trace file changed between plan's two passes or
the output could not be written (one line on stderr; the output is partial).
)",
      FormatThreshold(d.zc_threshold), CopyOpName(d.copy_op), kMaxIovsPerOp,
      d.max_iovs_per_op, kMaxBytesPerOp, d.max_bytes_per_op, kMaxOpsPerChain,
      d.max_ops_per_chain, d.zc_gap_bytes, kDefaultThresholds,
      absl::StrCat(kMaxTraceFileBytes), absl::StrCat(kMaxTraceLineBytes),
      absl::StrCat(kMaxWeightsFileBytes), absl::StrCat(kDefaultMaxTraceOps));
}

int RunZcplan(absl::Span<const std::string> args, std::ostream& out,
              std::ostream& err) {
  if (PrintVersionIfAsked(args, "zcplan", out)) return kZcplanOk;
  bool help = false;
  absl::StatusOr<Config> config = ParseConfig(args, &help);
  absl::Status s = config.status();
  if (s.ok() && help) {
    out << ZcplanUsage();
    return kZcplanOk;
  }
  Input input;
  if (s.ok() && config->command == Command::kImport) {
    s = RunImport(*config, out);
  } else {
    if (s.ok()) s = input.Open(*config);
    if (s.ok()) {
      s = config->command == Command::kPlan ? RunPlan(*config, input, out)
                                            : RunSimulate(*config, input, out);
    }
  }
  if (s.ok()) return kZcplanOk;
  err << "zcplan: " << OneLine(s.message()) << "\n";
  return absl::IsAborted(s) ? kZcplanFailed : kZcplanBadInput;
}

}  // namespace zcplan
