// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tools/zcdoctor_cli.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <new>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "zcplan/planner/trace.h"
#include "zcplan/tools/cli_io.h"
#include "zcplan/tune/doctor.h"
#include "zcplan/tune/doctor_sources.h"
#include "zcplan/uring/net.h"

namespace zcplan {
namespace {

constexpr uint64_t kMaxProbeBytes = uint64_t{256} << 20;

struct Config {
  std::vector<DoctorRequest::Peer> peers;
  std::string probe_host;
  std::string probe_port;
  uint64_t probe_bytes = SendProbeOptions().bytes;
  bool json = false;
};

absl::Status Bad(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

// A host name or address: printable, no spaces, no longer than a DNS name.
bool PlausibleHost(absl::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (char ch : host) {
    if (ch <= ' ' || ch > '~') return false;
  }
  return true;
}

// HOST, HOST:PORT, an IPv6 address alone, or [IPV6] with or without :PORT.
absl::StatusOr<DoctorRequest::Peer> ParsePeer(absl::string_view text) {
  DoctorRequest::Peer peer{std::string(text), "9"};
  const bool bracketed = absl::StartsWith(text, "[");
  const size_t colons = std::count(text.begin(), text.end(), ':');
  if (bracketed && absl::EndsWith(text, "]")) {
    peer.host = std::string(text.substr(1, text.size() - 2));
  } else if (bracketed || colons == 1) {
    absl::StatusOr<std::pair<std::string, std::string>> hp =
        SplitHostPort(std::string(text));
    if (!hp.ok()) return hp.status();
    peer = {hp->first, hp->second};
  }
  if (!PlausibleHost(peer.host)) return Bad("bad host");
  return peer;
}

absl::Status SetFlag(absl::string_view name, absl::string_view v, Config& c) {
  if (name == "peer") {
    c.peers.clear();
    for (absl::string_view item : absl::StrSplit(v, ',')) {
      absl::StatusOr<DoctorRequest::Peer> peer = ParsePeer(item);
      if (!peer.ok()) {
        return Bad(absl::StrCat("bad peer ", QuoteForMessage(item),
                                ": expected HOST or HOST:PORT, e.g. "
                                "192.0.2.7, 192.0.2.7:9000 or "
                                "[2001:db8::7]:9000"));
      }
      c.peers.push_back(*peer);
    }
  } else if (name == "probe") {
    absl::StatusOr<std::pair<std::string, std::string>> hp =
        SplitHostPort(std::string(v));
    if (!hp.ok() || !PlausibleHost(hp->first)) {
      return Bad(absl::StrCat("bad address ", QuoteForMessage(v),
                              ": expected HOST:PORT with a port 1..65535, "
                              "e.g. 127.0.0.1:9000 or [::1]:9000"));
    }
    c.probe_host = hp->first;
    c.probe_port = hp->second;
  } else if (name == "probe-bytes") {
    absl::StatusOr<uint64_t> n = ParseSize(v);
    if (!n.ok() || *n == 0 || *n > kMaxProbeBytes) {
      return Bad(absl::StrCat("bad size ", QuoteForMessage(v),
                              ": expected 1..256M, e.g. 4M"));
    }
    c.probe_bytes = *n;
  } else if (name == "format") {
    if (v != "text" && v != "json") {
      return Bad(
          absl::StrCat("bad format ", QuoteForMessage(v), " (text or json)"));
    }
    c.json = v == "json";
  }
  return absl::OkStatus();
}

constexpr absl::string_view kValueFlags[] = {"peer", "probe", "probe-bytes",
                                             "format"};

absl::Status ParseArgs(absl::Span<const std::string> args, Config& c) {
  for (size_t i = 0; i < args.size(); ++i) {
    const absl::string_view arg = args[i];
    if (!absl::StartsWith(arg, "--") || arg.size() == 2) {
      return Bad(absl::StrCat("unexpected argument ", QuoteForMessage(arg),
                              ": every input is a flag; see zcdoctor --help"));
    }
    const size_t eq = arg.find('=');
    const std::string name(arg.substr(2, eq - 2));
    if (std::find(std::begin(kValueFlags), std::end(kValueFlags), name) ==
        std::end(kValueFlags)) {
      return Bad(absl::StrCat("unknown flag ", QuoteForMessage("--" + name),
                              "; see zcdoctor --help"));
    }
    absl::string_view v;
    if (eq != absl::string_view::npos) {
      v = arg.substr(eq + 1);
    } else if (i + 1 < args.size() && !absl::StartsWith(args[i + 1], "--")) {
      v = args[++i];
    } else {
      return Bad(absl::StrCat("flag --", EscapeForMessage(name, 40),
                              " needs a value"));
    }
    absl::Status s = SetFlag(name, v, c);
    if (!s.ok()) return Bad(absl::StrCat("--", name, ": ", s.message()));
  }
  return absl::OkStatus();
}

// A JSON string with every control character escaped.
// TODO: //tools:json's JsonString once it lands.
std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (unsigned char ch : text) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += static_cast<char>(ch);
    } else if (ch < 0x20 || ch == 0x7f) {
      out += absl::StrFormat("\\u%04x", ch);
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out + "\"";
}

void PrintChecksJson(absl::Span<const Check> checks, std::ostream& out) {
  out << "[";
  for (size_t i = 0; i < checks.size(); ++i) {
    const Check& c = checks[i];
    out << (i == 0 ? "" : ",") << "{\"name\":" << JsonString(c.name)
        << ",\"status\":" << JsonString(CheckStatusName(c.status))
        << ",\"value\":" << JsonString(c.value)
        << ",\"advice\":" << JsonString(c.advice) << "}";
  }
  out << "]";
}

void PrintJson(const DoctorReport& report, const Verdict& verdict,
               std::ostream& out) {
  out << "{\"verdict\":{\"pays\":" << (verdict.pays ? "true" : "false")
      << ",\"text\":" << JsonString(verdict.text) << "},\"host\":";
  PrintChecksJson(report.host, out);
  out << ",\"paths\":[";
  for (size_t i = 0; i < report.paths.size(); ++i) {
    const PathReport& p = report.paths[i];
    out << (i == 0 ? "" : ",") << "{\"target\":" << JsonString(p.target)
        << ",\"interface\":" << JsonString(p.interface) << ",\"checks\":";
    PrintChecksJson(p.checks, out);
    out << "}";
  }
  out << "]}\n";
}

void PrintChecksText(absl::Span<const Check> checks, std::ostream& out) {
  for (const Check& c : checks) {
    out << absl::StrFormat("  %-22s %-8s %s\n", c.name,
                           CheckStatusName(c.status), c.value);
    if (!c.advice.empty()) {
      out << absl::StrFormat("  %-22s %-8s %s\n", "", "", c.advice);
    }
  }
}

void PrintText(const DoctorReport& report, const Verdict& verdict,
               std::ostream& out) {
  out << absl::StrFormat("  %-22s %-8s %s\n", "CHECK", "STATUS", "VALUE");
  out << "this machine\n";
  PrintChecksText(report.host, out);
  for (const PathReport& p : report.paths) {
    if (report.for_peer) {
      out << "to " << p.target << "\n";
    } else {
      out << "interface " << p.interface << "\n";
    }
    PrintChecksText(p.checks, out);
  }
  out << "verdict: " << verdict.text << "\n";
}

int Run(const Config& c, std::ostream& out, std::ostream& err) {
  DoctorRequest request;
  request.peers = c.peers;
  request.probe_host = c.probe_host;
  request.probe_port = c.probe_port;
  request.probe.bytes = c.probe_bytes;
  absl::StatusOr<DoctorReport> report = Examine(request);
  if (!report.ok()) {
    err << "zcdoctor: " << EscapeForMessage(report.status().message(), 300)
        << "\n";
    return kZcdoctorBadInput;
  }
  const Verdict verdict = JudgeReport(*report);
  if (c.json) {
    PrintJson(*report, verdict, out);
  } else {
    PrintText(*report, verdict, out);
  }
  out.flush();
  if (!out) {
    err << "zcdoctor: cannot write the report to standard output\n";
    return kZcdoctorBlocked;
  }
  return verdict.pays ? kZcdoctorPays : kZcdoctorBlocked;
}

}  // namespace

std::string ZcdoctorUsage() {
  return absl::StrFormat(
      R"(usage: zcdoctor [flags]

Says whether zero-copy send can pay on this machine, and why not: the kernel
and io_uring (the opcodes and flags the zcplan executor uses, probed), the
memory limits it works under, and the path to a peer (the interface the
route uses, what kind of device it is, and its offloads as the kernel reports
them). Each check is ok, a warning, or blocks zero-copy, with the value found
and what to do; the last line is the verdict.

  zcdoctor                          every interface that is up
  zcdoctor --peer 192.0.2.7         the route to that peer
  zcdoctor --probe 192.0.2.7:9000   and a live send to a receiver there
                                    (zcsend --listen 9000, socat, any sink)

Flags:
  --peer LIST          check the route to these peers instead of every
                       interface: HOST or HOST:PORT, comma-separated (the
                       port only picks the route)
  --probe HOST:PORT    also send a few MiB in 64 KiB zero-copy buffers to a
                       TCP receiver there through the executor, and count the
                       notifications that say the kernel copied; its route is
                       checked as a --peer's
  --probe-bytes SIZE   how much --probe sends, up to 256M [%s]
  --format FORMAT      text or json [text]

Exit status: 0 when zero-copy can pay (to every --peer, or on at least one
interface); 1 when something blocks it, or the report cannot be written;
2 on bad input (a bad flag, a peer that does not resolve or has no route).
)",
      FormatSize(SendProbeOptions().bytes));
}

int RunZcdoctor(absl::Span<const std::string> args, std::ostream& out,
                std::ostream& err) {
  if (PrintVersionIfAsked(args, "zcdoctor", out)) return kZcdoctorPays;
  for (const std::string& arg : args) {
    if (arg == "--help" || arg == "-h") {
      out << ZcdoctorUsage() << std::flush;
      if (!out) {
        err << "zcdoctor: cannot write the help to standard output\n";
        return kZcdoctorBlocked;
      }
      return kZcdoctorPays;
    }
  }
  try {
    Config config;
    if (absl::Status s = ParseArgs(args, config); !s.ok()) {
      err << "zcdoctor: " << s.message() << "\n";
      return kZcdoctorBadInput;
    }
    return Run(config, out, err);
  } catch (const std::bad_alloc&) {
    err << "zcdoctor: out of memory\n";
    return kZcdoctorBlocked;
  }
}

}  // namespace zcplan
