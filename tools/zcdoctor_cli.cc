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

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "zcplan/planner/flag_types.h"
#include "zcplan/planner/trace.h"
#include "zcplan/tools/cli_io.h"
#include "zcplan/tools/flags.h"
#include "zcplan/tools/json.h"
#include "zcplan/tune/doctor.h"
#include "zcplan/tune/doctor_sources.h"
#include "zcplan/uring/net.h"

ABSL_FLAG(std::string, peer, "",
          "peers to check the routes to, HOST or HOST:PORT, comma-separated");
ABSL_FLAG(std::string, probe, "", "HOST:PORT of a receiver for a live send");
ABSL_FLAG(zcplan::ByteSize, probe_bytes,
          zcplan::ByteSize{zcplan::SendProbeOptions().bytes},
          "bytes the live send sends");
ABSL_FLAG(std::string, format, "text", "text or json");

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

// The flags as they are spelled on the command line.
constexpr absl::string_view kFlagNames[] = {"peer", "probe", "probe-bytes",
                                            "format"};

// Copies the parsed flags into `c` (called inside ParseFlags).
absl::Status ReadFlags(const ParsedFlags& parsed, Config& c) {
  const std::string peers = absl::GetFlag(FLAGS_peer);
  const bool peer_given = std::find(parsed.given.begin(), parsed.given.end(),
                                    "peer") != parsed.given.end();
  if (peer_given || !peers.empty()) {
    for (absl::string_view item : absl::StrSplit(peers, ',')) {
      absl::StatusOr<DoctorRequest::Peer> peer = ParsePeer(item);
      if (!peer.ok()) {
        return Bad(absl::StrCat("--peer: bad peer ", QuoteForMessage(item),
                                ": expected HOST or HOST:PORT, e.g. "
                                "192.0.2.7, 192.0.2.7:9000 or "
                                "[2001:db8::7]:9000"));
      }
      c.peers.push_back(*peer);
    }
  }
  const std::string probe = absl::GetFlag(FLAGS_probe);
  if (!probe.empty()) {
    absl::StatusOr<std::pair<std::string, std::string>> hp =
        SplitHostPort(probe);
    if (!hp.ok() || !PlausibleHost(hp->first)) {
      return Bad(absl::StrCat("--probe: bad address ", QuoteForMessage(probe),
                              ": expected HOST:PORT with a port 1..65535, "
                              "e.g. 127.0.0.1:9000 or [::1]:9000"));
    }
    c.probe_host = hp->first;
    c.probe_port = hp->second;
  }
  c.probe_bytes = absl::GetFlag(FLAGS_probe_bytes).bytes;
  // Fewer bytes than one zero-copy buffer would report "no send went
  // zero-copy" of any path.
  if (c.probe_bytes < kSendProbeThreshold || c.probe_bytes > kMaxProbeBytes) {
    return Bad(absl::StrCat("--probe-bytes: bad size '",
                            FormatSize(c.probe_bytes), "': expected ",
                            FormatSize(kSendProbeThreshold), "..",
                            FormatSize(kMaxProbeBytes), ", e.g. 4M"));
  }
  const std::string format = absl::GetFlag(FLAGS_format);
  if (format != "text" && format != "json") {
    return Bad(absl::StrCat("--format: bad format ", QuoteForMessage(format),
                            " (text or json)"));
  }
  c.json = format == "json";
  return absl::OkStatus();
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
  --probe-bytes SIZE   how much --probe sends, 4K..256M [%s]
  --format FORMAT      text or json [text]

Exit status: 0 when zero-copy can pay (to every --peer, or on at least one
interface); 1 when something blocks it, or the report cannot be written;
2 on bad input (a bad flag, a peer that does not resolve or has no route).
)",
      FormatSize(SendProbeOptions().bytes));
}

int RunZcdoctor(absl::Span<const std::string> args, std::ostream& out,
                std::ostream& err) {
  switch (AnswerVersionOrHelp(args, "zcdoctor", ZcdoctorUsage, out)) {
    case FirstAnswer::kAnswered:
      return kZcdoctorPays;
    case FirstAnswer::kOutputFailed:
      err << "zcdoctor: cannot write the help to standard output\n";
      return kZcdoctorBlocked;
    case FirstAnswer::kNone:
      break;
  }
  try {
    Config config;
    if (absl::Status s = ParseFlags(args, kFlagNames, {"zcdoctor", "", false},
                                    [&](const ParsedFlags& parsed) {
                                      return ReadFlags(parsed, config);
                                    })
                             .status();
        !s.ok()) {
      // Escaped already, by ParseFlags and by ReadFlags.
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
