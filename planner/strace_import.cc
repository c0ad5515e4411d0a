// SPDX-License-Identifier: Apache-2.0
#include "zcplan/planner/strace_import.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "zcplan/planner/trace.h"

namespace zcplan {
namespace {

constexpr absl::string_view kOtherCall =
    "system call not imported (only writev, sendmsg, sendto, send, write)";
constexpr absl::string_view kMalformed = "malformed or truncated call";
constexpr absl::string_view kAbbreviated =
    "iovec array abbreviated by strace past the bytes sent (capture with "
    "-s N, N at least the iovec count)";

uint64_t SaturatingAdd(uint64_t a, uint64_t b) {
  uint64_t sum = 0;
  return __builtin_add_overflow(a, b, &sum) ? UINT64_MAX : sum;
}

// Bytes of `text` that are [A-Za-z0-9_-], at most 32 of them, else
// `fallback`: a name taken from the capture for a reason, kept printable.
std::string NameOr(absl::string_view text, absl::string_view fallback) {
  if (text.empty() || text.size() > 32 ||
      !std::all_of(text.begin(), text.end(), [](char c) {
        return absl::ascii_isalnum(c) || c == '_' || c == '-';
      })) {
    return std::string(fallback);
  }
  return std::string(text);
}

// `text` with bytes outside printable ASCII as \xNN (and backslash doubled).
std::string Printable(absl::string_view text) {
  std::string out;
  for (const char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) {
      absl::StrAppendFormat(&out, "\\x%02x", u);
    } else if (c == '\\') {
      out += "\\\\";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool ParseDecimal(absl::string_view text, uint64_t* value) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), absl::ascii_isdigit) &&
         absl::SimpleAtoi(text, value) && *value <= kMaxTraceSize;
}

// Skips one quoted string starting at text[i] == '"', with backslash escapes;
// returns the index after the closing quote, or npos if there is none.
size_t SkipString(absl::string_view text, size_t i) {
  for (++i; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
    } else if (text[i] == '"') {
      return i + 1;
    }
  }
  return absl::string_view::npos;
}

// The index of the first byte of `stops` outside strings, brackets, braces
// and parentheses; text.size() if there is none. npos when a string does not
// end or a bracket closes that was not opened.
size_t FindTopLevel(absl::string_view text, absl::string_view stops) {
  int depth = 0;
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (depth == 0 && absl::StrContains(stops, c)) return i;
    if (c == '"') {
      i = SkipString(text, i);
      if (i == absl::string_view::npos) return i;
      continue;
    }
    if (c == '(' || c == '[' || c == '{') ++depth;
    if ((c == ')' || c == ']' || c == '}') && --depth < 0) {
      return absl::string_view::npos;
    }
    ++i;
  }
  return depth == 0 ? text.size() : absl::string_view::npos;
}

// Splits `text` at the commas outside strings and brackets, trimming each
// piece. False if they do not balance.
bool SplitTopLevel(absl::string_view text,
                   std::vector<absl::string_view>* pieces) {
  pieces->clear();
  for (;;) {
    const size_t comma = FindTopLevel(text, ",");
    if (comma == absl::string_view::npos) return false;
    pieces->push_back(absl::StripAsciiWhitespace(text.substr(0, comma)));
    if (comma == text.size()) return true;
    text.remove_prefix(comma + 1);
  }
}

// The index of the ')' that closes an argument list starting at text[0]
// (just after its '('), or npos.
size_t FindClose(absl::string_view text) {
  const size_t close = FindTopLevel(text, ")");
  return close == text.size() ? absl::string_view::npos : close;
}

// "name=value" among `fields`: sets `*value`, or returns false.
bool Field(absl::Span<const absl::string_view> fields, absl::string_view name,
           absl::string_view* value) {
  for (absl::string_view f : fields) {
    if (absl::ConsumePrefix(&f, name) && absl::ConsumePrefix(&f, "=")) {
      *value = f;
      return true;
    }
  }
  return false;
}

// The iovec lengths of "[{iov_base=..., iov_len=N}, ...]". `*abbreviated`
// is set when strace left elements out ("..." as the last element).
// Returns false when it is no iovec array (e.g. an address strace could not
// read).
bool ParseIovecs(absl::string_view text, std::vector<uint64_t>* lengths,
                 bool* abbreviated) {
  lengths->clear();
  *abbreviated = false;
  if (!absl::ConsumePrefix(&text, "[") || !absl::ConsumeSuffix(&text, "]")) {
    return false;
  }
  if (absl::StripAsciiWhitespace(text).empty()) return true;
  std::vector<absl::string_view> elements, fields;
  if (!SplitTopLevel(text, &elements)) return false;
  for (size_t k = 0; k < elements.size(); ++k) {
    absl::string_view e = elements[k];
    if (e == "..." && k + 1 == elements.size()) {
      *abbreviated = true;
      return true;
    }
    if (!absl::ConsumePrefix(&e, "{") || !absl::ConsumeSuffix(&e, "}") ||
        !SplitTopLevel(e, &fields)) {
      return false;
    }
    absl::string_view len;
    uint64_t n = 0;
    if (!Field(fields, "iov_len", &len) || !ParseDecimal(len, &n)) {
      return false;
    }
    lengths->push_back(n);
  }
  return true;
}

// What a -y/-yy annotation says about a descriptor: empty for a socket to
// import (TCP, or a socket of unknown protocol), else the reason.
std::string NotTcpReason(absl::string_view annotation) {
  if (absl::StartsWith(annotation, "/")) return "file";
  const size_t colon = annotation.find(':');
  if (colon == absl::string_view::npos) return "other descriptor";
  const absl::string_view kind = annotation.substr(0, colon);
  if (kind.empty()) return "other descriptor";
  if (kind == "TCP" || kind == "TCPv6" || kind == "socket") return "";
  if (kind == "pipe" || kind == "anon_inode") return std::string(kind);
  if (absl::ascii_isupper(kind[0])) {
    return absl::StrCat(NameOr(kind, "non-TCP"), " socket");
  }
  return NameOr(kind, "other descriptor");
}

// The annotation of "7<TCP:[...]>" starting at text[0] == '<': its inside,
// and `*end` just past its '>'. Paths nest "<char 1:3>" and have '<' and '>'
// escaped; socket annotations hold "->" inside brackets.
bool ParseAnnotation(absl::string_view text, absl::string_view* inside,
                     size_t* end) {
  const bool path = text.size() > 1 && text[1] == '/';
  int angle = 0, square = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\') {
      ++i;
      continue;
    }
    if (!path) {
      if (c == '[') ++square;
      if (c == ']') --square;
      if (square > 0) continue;
    }
    if (c == '<') ++angle;
    if (c == '>' && --angle == 0) {
      *inside = text.substr(1, i - 1);
      *end = i + 1;
      return true;
    }
  }
  return false;
}

// The line's prefix: "[pid N] " or "N " (with -f), then timestamps (-t,
// -tt, -ttt, -r) and bracketed fields (-i, -n). Sets `*pid` (0 if none) and
// returns the rest.
absl::string_view StripPrefix(absl::string_view line, uint64_t* pid) {
  *pid = 0;
  line = absl::StripLeadingAsciiWhitespace(line);
  if (absl::ConsumePrefix(&line, "[pid")) {
    line = absl::StripLeadingAsciiWhitespace(line);
    const size_t close = line.find(']');
    if (close != absl::string_view::npos &&
        ParseDecimal(line.substr(0, close), pid)) {
      line = line.substr(close + 1);
    }
  } else {
    const size_t space = line.find(' ');
    if (space != absl::string_view::npos &&
        ParseDecimal(line.substr(0, space), pid)) {
      line = line.substr(space);
    }
  }
  for (;;) {
    line = absl::StripLeadingAsciiWhitespace(line);
    if (absl::StartsWith(line, "(+")) {
      // -r after -t/-tt/-ttt: "(+     0.000123)", padded with spaces.
      const size_t close = line.find(')');
      if (close == absl::string_view::npos) return line;
      line = line.substr(close + 1);
      continue;
    }
    const size_t space = line.find(' ');
    if (space == absl::string_view::npos) return line;
    const absl::string_view token = line.substr(0, space);
    if (absl::ascii_isdigit(token[0]) &&
        std::all_of(token.begin(), token.end(), [](char c) {
          return absl::ascii_isdigit(c) || c == '.' || c == ':';
        })) {
      line = line.substr(space);  // A timestamp.
    } else if (token[0] == '[' && !absl::StartsWith(line, "[ Process")) {
      const size_t close = line.find(']');
      if (close == absl::string_view::npos) return line;
      line = line.substr(close + 1);
    } else {
      return line;
    }
  }
}

// A system call name followed by '(': its length, or 0.
size_t CallNameLength(absl::string_view text) {
  size_t n = 0;
  while (n < text.size() && n <= 32 &&
         (absl::ascii_islower(text[n]) || absl::ascii_isdigit(text[n]) ||
          text[n] == '_')) {
    ++n;
  }
  return n > 0 && n < text.size() && text[n] == '(' ? n : 0;
}

}  // namespace

absl::string_view SkipKindName(SkipKind kind) {
  switch (kind) {
    case SkipKind::kFailed:
      return "sent nothing";
    case SkipKind::kNotTcp:
      return "not a TCP socket";
    case SkipKind::kUnusable:
      return "unusable";
    case SkipKind::kNote:
      return "strace note";
  }
  return "unusable";
}

std::vector<std::pair<size_t, size_t>> StraceImport::InCaptureOrder() const {
  std::vector<std::tuple<uint64_t, size_t, size_t>> all;
  for (size_t c = 0; c < connections.size(); ++c) {
    for (size_t b = 0; b < connections[c].batches(); ++b) {
      all.emplace_back(connections[c].line(b), c, b);
    }
  }
  std::sort(all.begin(), all.end());
  std::vector<std::pair<size_t, size_t>> order;
  order.reserve(all.size());
  for (const auto& [line, c, b] : all) order.emplace_back(c, b);
  return order;
}

void StraceImporter::Skip(SkipKind kind, absl::string_view reason,
                          uint64_t first_line, uint64_t lines) {
  auto [it, added] = skip_index_.try_emplace(
      std::make_pair(kind, std::string(reason)), result_.skipped.size());
  if (added) {
    result_.skipped.push_back({kind, std::string(reason), 0, first_line});
  }
  SkippedLines& s = result_.skipped[it->second];
  s.lines += lines;
  s.first_line = std::min(s.first_line, first_line);
}

void StraceImporter::AddUnreadLine(absl::string_view reason) {
  const uint64_t number = ++result_.lines;
  Skip(SkipKind::kUnusable, reason, number, 1);
}

void StraceImporter::AddLine(absl::string_view line) {
  const uint64_t number = ++result_.lines;
  uint64_t pid = 0;
  absl::string_view rest =
      absl::StripTrailingAsciiWhitespace(StripPrefix(line, &pid));
  if (rest.empty()) return Skip(SkipKind::kNote, "blank line", number, 1);
  if (absl::StartsWith(rest, "+++ ")) {
    return Skip(SkipKind::kNote, "process exit (+++ ... +++)", number, 1);
  }
  if (absl::StartsWith(rest, "--- ")) {
    return Skip(SkipKind::kNote, "signal (--- ... ---)", number, 1);
  }
  if (absl::StartsWith(rest, "strace: ") ||
      absl::StartsWith(rest, "[ Process ")) {
    return Skip(SkipKind::kNote, "strace message", number, 1);
  }
  if (absl::ConsumePrefix(&rest, "<... ")) {
    size_t n = 0;
    while (n < rest.size() && n <= 32 &&
           (absl::ascii_isalnum(rest[n]) || rest[n] == '_')) {
      ++n;
    }
    const absl::string_view name = rest.substr(0, n);
    rest.remove_prefix(n);
    auto it = pending_.find(pid);
    if (n == 0 || !absl::ConsumePrefix(&rest, " resumed>") ||
        absl::EndsWith(rest, "<unfinished ...>") || it == pending_.end() ||
        !absl::StartsWith(it->second.text, absl::StrCat(name, "("))) {
      return Skip(SkipKind::kUnusable,
                  "resumed call whose start is not in the capture", number, 1);
    }
    const Pending started = std::move(it->second);
    pending_.erase(it);
    return AddCall(pid, absl::StrCat(started.text, rest), started.line, 2);
  }
  if (CallNameLength(rest) == 0) {
    return Skip(SkipKind::kUnusable, "not strace output", number, 1);
  }
  if (absl::ConsumeSuffix(&rest, "<unfinished ...>")) {
    auto [it, added] = pending_.try_emplace(pid);
    if (!added) {
      Skip(SkipKind::kUnusable, "unfinished call never resumed",
           it->second.line, 1);
    }
    it->second.text = std::string(absl::StripTrailingAsciiWhitespace(rest));
    it->second.line = number;
    return;
  }
  AddCall(pid, rest, number, 1);
}

void StraceImporter::AddCall(uint64_t pid, absl::string_view call,
                             uint64_t first_line, uint64_t lines) {
  const size_t n = CallNameLength(call);
  const absl::string_view name = call.substr(0, n);
  const bool vector = name == "writev" || name == "sendmsg";
  const bool plain = name == "write" || name == "send" || name == "sendto";
  if (!vector && !plain) {
    return Skip(SkipKind::kUnusable, kOtherCall, first_line, lines);
  }
  absl::string_view args = call.substr(n + 1);
  // The descriptor first: its annotation may hold anything a path can.
  size_t digits = 0;
  while (digits < args.size() && absl::ascii_isdigit(args[digits])) ++digits;
  uint64_t fd = 0;
  if (!ParseDecimal(args.substr(0, digits), &fd) || fd > INT32_MAX) {
    return Skip(SkipKind::kUnusable, kMalformed, first_line, lines);
  }
  args.remove_prefix(digits);
  absl::string_view annotation;
  const bool annotated = absl::StartsWith(args, "<");
  if (annotated) {
    size_t end = 0;
    if (!ParseAnnotation(args, &annotation, &end)) {
      return Skip(SkipKind::kUnusable, kMalformed, first_line, lines);
    }
    args.remove_prefix(end);
  }
  std::vector<absl::string_view> pieces;
  const size_t close = absl::ConsumePrefix(&args, ",")
                           ? FindClose(args)
                           : absl::string_view::npos;
  if (close == absl::string_view::npos ||
      !SplitTopLevel(args.substr(0, close), &pieces) || pieces.size() < 2) {
    return Skip(SkipKind::kUnusable, kMalformed, first_line, lines);
  }
  absl::string_view result =
      absl::StripLeadingAsciiWhitespace(args.substr(close + 1));
  if (!absl::ConsumePrefix(&result, "=")) {
    return Skip(SkipKind::kUnusable, kMalformed, first_line, lines);
  }
  result = absl::StripLeadingAsciiWhitespace(result);

  if (annotated) {
    const std::string why = NotTcpReason(annotation);
    if (!why.empty()) return Skip(SkipKind::kNotTcp, why, first_line, lines);
  } else if (!options_.assume_sockets &&
             (name == "write" || name == "writev")) {
    return Skip(SkipKind::kUnusable,
                "write on a descriptor strace did not annotate (capture with "
                "-yy to tell sockets from files)",
                first_line, lines);
  }

  const absl::string_view result_word = result.substr(0, result.find(' '));
  if (result_word == "?") {
    return Skip(SkipKind::kUnusable, "call without a result (= ?)", first_line,
                lines);
  }
  if (absl::StartsWith(result_word, "-")) {
    absl::string_view error = result.substr(result_word.size());
    error = absl::StripLeadingAsciiWhitespace(error);
    error = error.substr(0, error.find(' '));
    return Skip(SkipKind::kFailed,
                absl::StrCat(result_word == "-1" ? "-1" : "error", " ",
                             NameOr(error, "(unknown error)")),
                first_line, lines);
  }
  uint64_t sent = 0;
  if (!ParseDecimal(result_word, &sent)) {
    return Skip(SkipKind::kUnusable, kMalformed, first_line, lines);
  }

  // The lengths asked for, and how many buffers there were.
  std::vector<uint64_t> asked;
  bool abbreviated = false;
  uint64_t count = 0;
  if (vector) {
    absl::string_view iov = pieces[0], iovcnt = pieces[1];
    if (name == "sendmsg") {
      absl::string_view msg = pieces[0];
      std::vector<absl::string_view> fields;
      if (!absl::ConsumePrefix(&msg, "{") || !absl::ConsumeSuffix(&msg, "}") ||
          !SplitTopLevel(msg, &fields) || !Field(fields, "msg_iov", &iov) ||
          !Field(fields, "msg_iovlen", &iovcnt)) {
        return Skip(SkipKind::kUnusable, "message not decoded by strace",
                    first_line, lines);
      }
    }
    if (!ParseDecimal(iovcnt, &count) ||
        (!ParseIovecs(iov, &asked, &abbreviated) && count != 0)) {
      return Skip(SkipKind::kUnusable, "iovec array not decoded by strace",
                  first_line, lines);
    }
    if (abbreviated ? asked.size() >= count : asked.size() != count) {
      return Skip(SkipKind::kUnusable, "iovec count does not match the array",
                  first_line, lines);
    }
  } else {
    if (!ParseDecimal(pieces[1], &count)) {
      return Skip(SkipKind::kUnusable, kMalformed, first_line, lines);
    }
    asked.push_back(count);
  }
  uint64_t shown = 0;
  for (uint64_t a : asked) shown = SaturatingAdd(shown, a);
  if (shown > kMaxTraceSize) {
    return Skip(SkipKind::kUnusable, "sizes above the trace limit", first_line,
                lines);
  }
  if (sent > shown && !abbreviated) {
    return Skip(SkipKind::kUnusable, "return value above the bytes asked",
                first_line, lines);
  }
  if (abbreviated &&
      (sent > shown || options_.sizes == ImportSizes::kRequested)) {
    return Skip(SkipKind::kUnusable, kAbbreviated, first_line, lines);
  }
  if (sent == 0) {
    return Skip(SkipKind::kFailed, "sent 0 bytes", first_line, lines);
  }
  // A short write: less than all the buffers asked for (with an abbreviated
  // array, whose total is unknown, the bytes sent end inside the printed
  // ones, so it is short too).
  const bool short_write = abbreviated || sent < shown;
  if (options_.sizes == ImportSizes::kSent && short_write) {
    uint64_t left = sent;
    size_t k = 0;
    for (; k < asked.size() && left > 0; ++k) {
      asked[k] = std::min(asked[k], left);
      left -= asked[k];
    }
    asked.resize(k);
  }

  const std::string key =
      annotated ? Printable(annotation) : absl::StrCat("pid ", pid, " fd ", fd);
  auto [it, added] =
      connection_index_.try_emplace(key, result_.connections.size());
  if (added) {
    result_.connections.emplace_back();
    ImportedConnection& c = result_.connections.back();
    c.name_ = key;
    c.pid_ = pid;
    c.fd_ = static_cast<int>(fd);
  }
  ImportedConnection& c = result_.connections[it->second];
  uint64_t bytes = 0;
  for (uint64_t a : asked) bytes += a;
  c.sizes_.insert(c.sizes_.end(), asked.begin(), asked.end());
  c.ends_.push_back(c.sizes_.size());
  c.lines_.push_back(first_line);
  c.bytes_ = SaturatingAdd(c.bytes_, bytes);
  c.short_writes_ += short_write;
  result_.lines_used += lines;
  ++result_.batches;
  result_.iovecs += asked.size();
  result_.bytes = SaturatingAdd(result_.bytes, bytes);
  result_.short_writes += short_write;
}

StraceImport StraceImporter::Finish() && {
  for (const auto& [pid, started] : pending_) {
    Skip(SkipKind::kUnusable, "unfinished call never resumed", started.line, 1);
  }
  pending_.clear();
  std::sort(result_.skipped.begin(), result_.skipped.end(),
            [](const SkippedLines& a, const SkippedLines& b) {
              return std::tie(a.kind, a.first_line) <
                     std::tie(b.kind, b.first_line);
            });
  return std::move(result_);
}

}  // namespace zcplan
