// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tools/flags.h"

#include <algorithm>

#include "absl/base/const_init.h"
#include "absl/base/internal/raw_logging.h"
#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "zcplan/planner/trace.h"
#include "zcplan/tools/cli_io.h"

namespace zcplan {
namespace {

// Parse errors quote user input: escaped, and capped at this many characters.
constexpr size_t kMaxMessageChars = 400;

ABSL_CONST_INIT absl::Mutex flags_mu(absl::kConstInit);

// ABSL_FLAG names are identifiers: --copy-op is FLAGS_copy_op.
absl::CommandLineFlag* FindFlag(absl::string_view name) {
  return absl::FindCommandLineFlag(absl::StrReplaceAll(name, {{"-", "_"}}));
}

absl::Status Bad(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

// Abseil's parse error is "Illegal value '<v>' specified for flag '<name>'"
// and then "; <the type's error>" if the type gave one: keep the type's
// error, which already quotes the value, or say what the value should be.
// Escaped and capped, once.
std::string ValueError(const absl::CommandLineFlag& flag,
                       absl::string_view value, absl::string_view error) {
  const std::string prefix = absl::StrCat(
      "Illegal value '", value, "' specified for flag '", flag.Name(), "'");
  absl::string_view rest = error;
  if (!absl::ConsumePrefix(&rest, prefix)) {
    return EscapeForMessage(error, kMaxMessageChars);
  }
  if (absl::ConsumePrefix(&rest, "; ") && !rest.empty()) {
    return EscapeForMessage(rest, kMaxMessageChars);
  }
  if (flag.IsOfType<absl::Duration>()) {
    return absl::StrCat("bad duration ", QuoteForMessage(value),
                        ": expected a number and a unit, e.g. 300ms or 2s");
  }
  return absl::StrCat("bad value ", QuoteForMessage(value));
}

// Sets every flag it was told of back to its default when it goes.
// (absl::FlagSaver would too, but it logs a line on stderr for each.)
class RestoreDefaults {
 public:
  RestoreDefaults() = default;
  RestoreDefaults(const RestoreDefaults&) = delete;
  RestoreDefaults& operator=(const RestoreDefaults&) = delete;
  ~RestoreDefaults() {
    for (const std::string& name : set_) {
      absl::CommandLineFlag* flag = FindFlag(name);
      std::string error;
      // Cannot fail: every flag type here reads back what it writes.
      if (flag != nullptr && !flag->ParseFrom(flag->DefaultValue(), &error)) {
        ABSL_RAW_LOG(FATAL, "flag --%s: default does not read back: %s",
                     name.c_str(), error.c_str());
      }
    }
  }

  void Add(absl::string_view name) { set_.emplace_back(name); }

 private:
  std::vector<std::string> set_;  // Its own copy: `ParsedFlags` is moved out.
};

// A negative number ("-5") is a bad value to refuse, not a flag.
bool LooksLikeFlag(absl::string_view arg) {
  return arg.size() > 1 && arg[0] == '-' && !absl::ascii_isdigit(arg[1]);
}

}  // namespace

absl::StatusOr<ParsedFlags> ParseFlags(
    absl::Span<const std::string> args,
    absl::Span<const absl::string_view> allowed, const FlagSyntax& syntax,
    absl::FunctionRef<absl::Status(const ParsedFlags&)> read) {
  absl::MutexLock lock(&flags_mu);
  RestoreDefaults restore;  // Declared first: it runs after the return.
  ParsedFlags parsed;
  bool dashes = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const absl::string_view arg = args[i];
    if (dashes) {
      parsed.positional.push_back(args[i]);
      continue;
    }
    if (arg == "--help" || arg == "-h") {
      parsed.help = true;
      continue;
    }
    if (syntax.positional) {
      if (arg == "--") {
        dashes = true;
        parsed.positional_before_dashes = parsed.positional.size();
        continue;
      }
      if (!LooksLikeFlag(arg)) {
        parsed.positional.push_back(args[i]);
        continue;
      }
    } else if (!absl::StartsWith(arg, "--") || arg.size() == 2) {
      return Bad(absl::StrCat("unexpected argument ", QuoteForMessage(arg),
                              ": every input is a flag; see ", syntax.tool,
                              " --help"));
    }
    const size_t eq = arg.find('=');
    const absl::string_view spelled = arg.substr(0, eq);
    absl::string_view name = spelled;
    const bool known =
        absl::ConsumePrefix(&name, "--") &&
        std::find(allowed.begin(), allowed.end(), name) != allowed.end();
    if (!known) {
      return Bad(absl::StrCat("unknown flag ", QuoteForMessage(spelled),
                              syntax.context, "; see ", syntax.tool,
                              " --help"));
    }
    absl::CommandLineFlag* flag = FindFlag(name);
    if (flag == nullptr) {
      return absl::InternalError(
          absl::StrCat("flag --", name, " is taken but not defined"));
    }
    absl::string_view value;
    if (flag->IsOfType<bool>()) {
      if (eq != absl::string_view::npos) {
        return Bad(absl::StrCat("flag --", name, " takes no value (got ",
                                QuoteForMessage(arg.substr(eq + 1)), ")"));
      }
      value = "true";
    } else if (eq != absl::string_view::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < args.size() && !absl::StartsWith(args[i + 1], "--")) {
      value = args[++i];
    } else {
      return Bad(absl::StrCat("flag --", name, " needs a value"));
    }
    restore.Add(name);
    if (std::string error; !flag->ParseFrom(value, &error)) {
      return Bad(
          absl::StrCat("--", name, ": ", ValueError(*flag, value, error)));
    }
    parsed.given.emplace_back(name);
  }
  if (!dashes) parsed.positional_before_dashes = parsed.positional.size();
  if (absl::Status s = read(parsed); !s.ok()) return s;
  return parsed;
}

absl::Status CountInRange(uint64_t n, uint64_t min, uint64_t max) {
  if (n >= min && n <= max) return absl::OkStatus();
  return Bad(absl::StrCat("bad number '", n, "': expected ", min, "..", max));
}

absl::Status SizeInRange(uint64_t bytes, uint64_t min, uint64_t max,
                         absl::string_view note) {
  if (bytes >= min && bytes <= max) return absl::OkStatus();
  return Bad(absl::StrCat("bad size '", FormatSize(bytes), "': expected ",
                          FormatSize(min), "..", FormatSize(max), note));
}

absl::Status DurationInRange(absl::Duration d, absl::Duration min,
                             absl::Duration max, absl::string_view expected) {
  if (d >= min && d <= max) return absl::OkStatus();
  return Bad(absl::StrCat("bad duration ",
                          QuoteForMessage(absl::FormatDuration(d)),
                          ": expected ", expected));
}

absl::Status FirstFailedCheck(std::initializer_list<FlagCheck> checks) {
  for (const FlagCheck& check : checks) {
    if (!check.status.ok()) {
      return Bad(absl::StrCat("--", check.flag, ": ", check.status.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace zcplan
