// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tune/doctor.h"

#include <sys/resource.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "zcplan/planner/trace.h"
#include "zcplan/uring/memlock.h"

namespace zcplan {
namespace {

constexpr int kArphrdLoopback = 772;
constexpr int kArphrdNone = 65534;  // tun
constexpr int kCapIpcLock = 14;

Check Make(absl::string_view name, CheckStatus status, std::string value,
           std::string advice = "") {
  return Check{std::string(name), status, std::move(value), std::move(advice)};
}

// A sysctl file's value: the text without surrounding white space.
std::optional<int64_t> SysctlInt(const std::optional<std::string>& text) {
  if (!text.has_value()) return std::nullopt;
  int64_t value = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &value)) {
    return std::nullopt;
  }
  return value;
}

std::string Quoted(absl::string_view text) {
  std::string out = "'";
  for (char ch : text.substr(0, 60)) {
    out += (ch >= ' ' && ch <= '~') ? ch : '?';
  }
  return out + (text.size() > 60 ? "...'" : "'");
}

// The value of "KEY=value" in a uevent's lines, "" when absent.
std::string UeventValue(absl::string_view uevent, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(uevent, '\n')) {
    if (absl::ConsumePrefix(&line, key) && absl::ConsumePrefix(&line, "=")) {
      return std::string(absl::StripAsciiWhitespace(line));
    }
  }
  return "";
}

Check OffloadCheck(absl::string_view name, absl::string_view what,
                   const std::optional<bool>& on, CheckStatus if_off,
                   absl::string_view off_advice, absl::string_view interface,
                   absl::string_view ethtool_name) {
  if (!on.has_value()) {
    return Make(name, CheckStatus::kWarning, "unknown",
                absl::StrCat("the kernel did not report ", what, " for ",
                             interface, "; see `ethtool -k ", interface, "`"));
  }
  if (*on) return Make(name, CheckStatus::kOk, "on");
  return Make(name, if_off, "off",
              absl::StrCat(off_advice, "; turn it on with `ethtool -K ",
                           interface, " ", ethtool_name,
                           " on` if the driver "
                           "can"));
}

// A blocking check in a few words: its advice up to the first ": " (the
// cause), or its name and value.
std::string BlockReason(const Check& c) {
  const size_t colon = c.advice.find(": ");
  if (colon == std::string::npos) return absl::StrCat(c.name, " is ", c.value);
  return c.advice.substr(0, colon);
}

}  // namespace

absl::string_view CheckStatusName(CheckStatus status) {
  switch (status) {
    case CheckStatus::kOk:
      return "ok";
    case CheckStatus::kWarning:
      return "warning";
    case CheckStatus::kBlocks:
      return "blocks";
  }
  return "unknown";
}

Check JudgeKernelRelease(absl::string_view release) {
  std::vector<absl::string_view> parts = absl::StrSplit(release, '.');
  int major = 0;
  int minor = 0;
  const bool parsed =
      parts.size() >= 2 && absl::SimpleAtoi(parts[0], &major) &&
      absl::SimpleAtoi(
          parts[1].substr(0, parts[1].find_first_not_of("0123456789")), &minor);
  std::string value(release.empty() ? "unknown" : release);
  if (!parsed) {
    return Make("kernel", CheckStatus::kWarning, Quoted(release),
                "not a MAJOR.MINOR release: the checks below say what the "
                "kernel supports");
  }
  const int version = major * 1000 + minor;
  if (version < 6000) {
    return Make("kernel", CheckStatus::kBlocks, value,
                "io_uring zero-copy send (IORING_OP_SEND_ZC) needs Linux 6.0 "
                "or later; upgrade the kernel");
  }
  if (version < 6002) {
    return Make("kernel", CheckStatus::kWarning, value,
                "Linux 6.2 or later reports when the kernel copied a "
                "zero-copy send (IORING_SEND_ZC_REPORT_USAGE); without it "
                "nothing tells a copied send from a real one");
  }
  return Make("kernel", CheckStatus::kOk, value);
}

Check JudgeIoUringDisabled(const std::optional<std::string>& text,
                           bool privileged) {
  constexpr absl::string_view kName = "io_uring_disabled";
  if (!text.has_value()) {
    return Make(kName, CheckStatus::kOk, "absent",
                "this kernel has no kernel.io_uring_disabled (before 6.6)");
  }
  const std::optional<int64_t> value = SysctlInt(text);
  if (!value.has_value() || *value < 0 || *value > 2) {
    return Make(kName, CheckStatus::kWarning,
                absl::StrCat(Quoted(absl::StripAsciiWhitespace(*text))),
                "an unknown value of kernel.io_uring_disabled; the ring check "
                "below says whether a ring can be made");
  }
  switch (*value) {
    case 0:
      return Make(kName, CheckStatus::kOk, "0 (open to every process)");
    case 1:
      if (privileged) {
        return Make(kName, CheckStatus::kWarning,
                    "1 (only CAP_SYS_ADMIN or kernel.io_uring_group)",
                    "this process may make rings, but an unprivileged server "
                    "may not: run it in kernel.io_uring_group, or `sysctl "
                    "kernel.io_uring_disabled=0`");
      }
      return Make(kName, CheckStatus::kBlocks,
                  "1 (only CAP_SYS_ADMIN or kernel.io_uring_group)",
                  "this process may not make rings: add its user to the group "
                  "kernel.io_uring_group names, or `sysctl "
                  "kernel.io_uring_disabled=0`");
    default:
      return Make(kName, CheckStatus::kBlocks, "2 (disabled for all)",
                  "io_uring is off on this machine: `sysctl "
                  "kernel.io_uring_disabled=0` (as root)");
  }
}

std::vector<Check> JudgeRing(const RingProbe& probe) {
  std::vector<Check> checks;
  if (!probe.status.ok()) {
    std::string advice = "io_uring is not usable here";
    if (absl::IsPermissionDenied(probe.status)) {
      advice =
          "the kernel refused io_uring (kernel.io_uring_disabled, or a "
          "seccomp filter such as a container runtime's default)";
    } else if (absl::IsResourceExhausted(probe.status)) {
      advice = "RLIMIT_MEMLOCK is too small for the ring itself: raise it";
    } else if (absl::IsUnimplemented(probe.status)) {
      advice =
          "this kernel has no io_uring (CONFIG_IO_URING off, or before 5.1)";
    }
    checks.push_back(Make("io_uring_ring", CheckStatus::kBlocks,
                          std::string(probe.status.message()), advice));
    return checks;
  }
  const RingFeatures& f = probe.features;
  checks.push_back(
      Make("io_uring_ring", CheckStatus::kOk,
           absl::StrCat(f.sq_entries, " SQEs, ", f.cq_entries, " CQEs, ",
                        f.memlock_bytes / 1024, " KiB of ring memory")));
  constexpr uint32_t kBoth =
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  struct Feature {
    absl::string_view name;
    bool present;
    CheckStatus if_missing;
    absl::string_view advice;
  };
  const Feature features[] = {
      {"send_zc", f.send_zc, CheckStatus::kBlocks,
       "the kernel has no IORING_OP_SEND_ZC (6.0+): every send is a copy"},
      {"sendmsg_zc", f.sendmsg_zc, CheckStatus::kWarning,
       "no IORING_OP_SENDMSG_ZC (6.1+): zero-copy ops carry one buffer each"},
      {"zc_report_usage", f.zc_report_usage, CheckStatus::kWarning,
       "no IORING_SEND_ZC_REPORT_USAGE (6.2+): the kernel cannot say when it "
       "copied a zero-copy send, so adaptive zero-copy and --probe see "
       "nothing"},
      {"sendmsg_zc_fixed_buf", f.sendmsg_zc_fixed, CheckStatus::kWarning,
       "no registered buffers on SENDMSG_ZC (6.15+): multi-piece ops pin "
       "their pages per send even from registered buffers"},
      {"single_issuer", (f.setup_flags & kBoth) == kBoth, CheckStatus::kWarning,
       "the kernel refused IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN (6.1+): "
       "the executor runs without them, with completions handled at any "
       "system call"},
  };
  for (const Feature& feature : features) {
    checks.push_back(feature.present
                         ? Make(feature.name, CheckStatus::kOk, "yes")
                         : Make(feature.name, feature.if_missing, "no",
                                std::string(feature.advice)));
  }
  return checks;
}

Check JudgeMemlock(uint64_t soft_limit, bool charged) {
  constexpr absl::string_view kName = "memlock";
  if (soft_limit == RLIM_INFINITY) {
    return Make(kName, CheckStatus::kOk, "unlimited");
  }
  std::string value = HumanSize(soft_limit);
  if (!charged) {
    return Make(kName, CheckStatus::kOk,
                absl::StrCat(value, " (not charged: CAP_IPC_LOCK)"));
  }
  if (soft_limit < (uint64_t{1} << 20)) {
    return Make(kName, CheckStatus::kWarning, value,
                "zero-copy sends pin their pages against this limit (the ring "
                "and registered buffers too): raise it with `ulimit -l`, "
                "LimitMEMLOCK= (systemd) or /etc/security/limits.conf");
  }
  return Make(kName, CheckStatus::kOk, value);
}

std::optional<uint64_t> ParseCapEff(absl::string_view proc_status) {
  for (absl::string_view line : absl::StrSplit(proc_status, '\n')) {
    if (!absl::ConsumePrefix(&line, "CapEff:")) continue;
    line = absl::StripAsciiWhitespace(line);
    uint64_t mask = 0;
    if (line.empty() || line.size() > 16 || !absl::SimpleHexAtoi(line, &mask)) {
      return std::nullopt;
    }
    return mask;
  }
  return std::nullopt;
}

Check JudgeCapIpcLock(std::optional<uint64_t> cap_eff) {
  constexpr absl::string_view kName = "cap_ipc_lock";
  if (!cap_eff.has_value()) {
    return Make(kName, CheckStatus::kWarning, "unknown",
                "no CapEff line in /proc/self/status");
  }
  if ((*cap_eff >> kCapIpcLock) & 1) {
    return Make(kName, CheckStatus::kOk, "yes",
                "the kernel charges this process nothing to RLIMIT_MEMLOCK; "
                "a server without CAP_IPC_LOCK is charged (see memlock)");
  }
  return Make(kName, CheckStatus::kOk, "no",
              "zero-copy pages are charged to RLIMIT_MEMLOCK");
}

Check JudgeNotificationCap(const CapChoice& choice) {
  constexpr absl::string_view kName = "notification_cap";
  if (choice.cap < 3 * kPageBytes) {
    return Make(kName, CheckStatus::kBlocks, choice.description,
                "the executor never sends zero-copy under 3 pages: raise "
                "RLIMIT_MEMLOCK or set ExecutorOptions::"
                "max_bytes_awaiting_notification");
  }
  if (choice.cap < (uint64_t{256} << 10)) {
    return Make(kName, CheckStatus::kWarning, choice.description,
                "few zero-copy sends can await their notifications at once; "
                "the rest go by copy: raise RLIMIT_MEMLOCK");
  }
  return Make(kName, CheckStatus::kOk, choice.description);
}

Check JudgeOptmemMax(const std::optional<std::string>& text) {
  constexpr absl::string_view kName = "optmem_max";
  const std::optional<int64_t> value = SysctlInt(text);
  if (!value.has_value() || *value < 0) {
    return Make(kName, CheckStatus::kWarning,
                text.has_value() ? Quoted(absl::StripAsciiWhitespace(*text))
                                 : std::string("unreadable"),
                "cannot read net.core.optmem_max");
  }
  const std::string shown = absl::StrCat(*value, " bytes");
  if (*value < 20480) {
    return Make(kName, CheckStatus::kWarning, shown,
                "MSG_ZEROCOPY's notifications (the socket API) are charged "
                "to it and fail with ENOBUFS when it runs out; io_uring's "
                "are not, but raise it (`sysctl net.core.optmem_max=131072`) "
                "if other senders use MSG_ZEROCOPY");
  }
  return Make(kName, CheckStatus::kOk, shown);
}

absl::StatusOr<std::string> InterfaceForRoute(
    absl::string_view peer, absl::string_view local,
    absl::Span<const InterfaceAddress> addresses) {
  bool local_peer = absl::StartsWith(peer, "127.") || peer == "::1" ||
                    absl::StartsWith(peer, "::ffff:127.");
  for (const InterfaceAddress& a : addresses) {
    if (a.address == peer) local_peer = true;
  }
  if (local_peer) {
    for (const InterfaceAddress& a : addresses) {
      if (a.loopback) return a.interface;
    }
    return absl::NotFoundError(absl::StrCat(
        "the peer ", peer, " is this machine, but no interface is a loopback"));
  }
  for (const InterfaceAddress& a : addresses) {
    if (a.address == local) return a.interface;
  }
  return absl::NotFoundError(absl::StrCat("no interface has the address ",
                                          local, " that the route to ", peer,
                                          " uses"));
}

Offloads OffloadsFromFeatures(absl::Span<const std::string> names,
                              absl::Span<const uint32_t> active) {
  Offloads o;
  auto merge = [](std::optional<bool>& into, bool on) {
    into = into.value_or(false) || on;
  };
  for (size_t i = 0; i < names.size(); ++i) {
    const bool on =
        i / 32 < active.size() && ((active[i / 32] >> (i % 32)) & 1) != 0;
    const absl::string_view name = names[i];
    if (name == "tx-scatter-gather") {
      merge(o.scatter_gather, on);
    } else if (absl::StartsWith(name, "tx-checksum-")) {
      // tx-checksum-fcoe-crc and -sctp do not carry TCP.
      if (absl::StrContains(name, "fcoe") || absl::StrContains(name, "sctp")) {
        continue;
      }
      merge(o.tx_checksum, on);
    } else if (name == "tx-tcp-segmentation" ||
               name == "tx-tcp6-segmentation") {
      merge(o.tso, on);
    } else if (name == "tx-generic-segmentation") {
      merge(o.gso, on);
    }
  }
  return o;
}

absl::string_view DeviceKindName(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::kLoopback:
      return "loopback";
    case DeviceKind::kVeth:
      return "veth";
    case DeviceKind::kTun:
      return "tun";
    case DeviceKind::kBridge:
      return "bridge";
    case DeviceKind::kNic:
      return "nic";
    case DeviceKind::kVirtual:
      return "virtual";
  }
  return "unknown";
}

DeviceKind ClassifyDevice(const InterfaceFacts& facts) {
  if (facts.loopback || facts.arp_type == kArphrdLoopback) {
    return DeviceKind::kLoopback;
  }
  const std::string devtype = UeventValue(facts.uevent, "DEVTYPE");
  if (facts.driver == "veth") return DeviceKind::kVeth;
  if (facts.driver == "tun" || facts.arp_type == kArphrdNone) {
    return DeviceKind::kTun;
  }
  if (devtype == "bridge" || facts.driver == "bridge") {
    return DeviceKind::kBridge;
  }
  if (facts.has_device) return DeviceKind::kNic;
  return DeviceKind::kVirtual;
}

std::vector<Check> JudgeInterface(const InterfaceFacts& facts) {
  std::vector<Check> checks;
  const DeviceKind kind = ClassifyDevice(facts);
  const std::string& n = facts.name;
  std::string value(DeviceKindName(kind));
  if (!facts.driver.empty() && facts.driver != value) {
    absl::StrAppend(&value, ", driver ", facts.driver);
  }
  switch (kind) {
    case DeviceKind::kLoopback:
      checks.push_back(
          Make("device", CheckStatus::kBlocks, value,
               "the receiving side copies: on loopback the kernel copies every "
               "zero-copy send into the receiver's socket and says so in each "
               "notification, so zero-copy cannot pay here; measure against a "
               "peer on a real NIC (zcsweep --peer)"));
      break;
    case DeviceKind::kVeth:
      checks.push_back(Make(
          "device", CheckStatus::kBlocks, value,
          "the receiving side copies: a veth hands each frame to the other "
          "namespace's receive path, which copies zero-copy pages; zero-copy "
          "pays only from the namespace that owns the NIC (host network)"));
      break;
    case DeviceKind::kTun:
      checks.push_back(
          Make("device", CheckStatus::kBlocks, value,
               "the receiving side copies: a tun/tap device hands frames to a "
               "user-space reader, which copies them"));
      break;
    case DeviceKind::kBridge:
      checks.push_back(Make(
          "device", CheckStatus::kWarning, value,
          "frames to a local port (veth, tap) are copied; zero-copy pays only "
          "for frames that leave by a NIC port with scatter-gather"));
      break;
    case DeviceKind::kVirtual:
      checks.push_back(Make(
          "device", CheckStatus::kWarning, value,
          absl::StrCat("a software device with no bus device behind it: "
                       "zero-copy pays only if ",
                       n,
                       " passes frames to a NIC without copying; check with "
                       "--probe against a real receiver")));
      break;
    case DeviceKind::kNic:
      checks.push_back(Make("device", CheckStatus::kOk, value));
      break;
  }
  if (!facts.offloads.has_value()) {
    checks.push_back(
        Make("offloads", CheckStatus::kWarning, "unknown",
             absl::StrCat("cannot read the offloads of ", n, " (",
                          facts.offloads_error.empty() ? "no reason given"
                                                       : facts.offloads_error,
                          "); see `ethtool -k ", n, "`")));
    return checks;
  }
  const Offloads& o = *facts.offloads;
  checks.push_back(OffloadCheck(
      "scatter_gather", "scatter-gather", o.scatter_gather,
      CheckStatus::kBlocks,
      "without scatter-gather the kernel silently copies every zero-copy send",
      n, "sg"));
  checks.push_back(OffloadCheck(
      "tx_checksum", "tx checksumming", o.tx_checksum, CheckStatus::kBlocks,
      "without tx checksum offload the kernel turns scatter-gather off, and "
      "copies zero-copy sends",
      n, "tx"));
  checks.push_back(OffloadCheck(
      "tso", "TCP segmentation offload", o.tso, CheckStatus::kWarning,
      "the CPU cuts every segment, which takes much of what zero-copy saves", n,
      "tso"));
  checks.push_back(OffloadCheck(
      "gso", "generic segmentation offload", o.gso, CheckStatus::kWarning,
      "each segment goes down the stack on its own", n, "gso"));
  return checks;
}

Check JudgeSendProbe(const SendProbeResult& r) {
  constexpr absl::string_view kName = "probe";
  if (!r.status.ok()) {
    return Make(kName, CheckStatus::kWarning,
                absl::StrCat("failed: ", r.status.message()),
                absl::StrCat("nothing learnt; the live send needs a receiver "
                             "that reads at ",
                             r.peer,
                             " (zcsend --listen PORT, or socat -u "
                             "TCP-LISTEN:PORT,fork /dev/null)"));
  }
  const std::string sent = absl::StrCat(
      HumanSize(r.bytes_zero_copy), " zero-copy, ", HumanSize(r.bytes_copied),
      " by copy; ", r.copied_notifications, " of ", r.notifications,
      " notifications copied");
  if (r.notifications == 0) {
    std::string why = "no send went zero-copy";
    if (r.fallbacks_unsupported > 0) {
      why = "the socket refused zero-copy (EOPNOTSUPP)";
    } else if (r.fallbacks_enomem > 0) {
      why = "zero-copy ran out of locked memory (ENOMEM): raise RLIMIT_MEMLOCK";
    }
    return Make(kName, CheckStatus::kBlocks, sent, why);
  }
  if (!r.report_usage) {
    return Make(kName, CheckStatus::kWarning, sent,
                "this kernel does not report copies "
                "(IORING_SEND_ZC_REPORT_USAGE, 6.2+): the probe cannot tell");
  }
  if (r.copied_notifications == r.notifications) {
    return Make(kName, CheckStatus::kBlocks, sent,
                absl::StrCat("the kernel copied every zero-copy send to ",
                             r.peer, ": zero-copy cannot pay on this path"));
  }
  if (r.copied_notifications > 0) {
    return Make(kName, CheckStatus::kWarning, sent,
                "the kernel copied some zero-copy sends (a route or device "
                "that copies part of the time)");
  }
  return Make(kName, CheckStatus::kOk, sent);
}

Verdict JudgeReport(const DoctorReport& report) {
  for (const Check& c : report.host) {
    if (c.status == CheckStatus::kBlocks) {
      return Verdict{false,
                     absl::StrCat("zero-copy cannot pay on this machine: ",
                                  BlockReason(c), " (", c.name, ")")};
    }
  }
  std::vector<std::string> pays;
  std::vector<std::string> blocked;
  for (const PathReport& p : report.paths) {
    const Check* first = nullptr;
    for (const Check& c : p.checks) {
      if (c.status == CheckStatus::kBlocks) {
        first = &c;
        break;
      }
    }
    std::vector<std::string> about;
    if (p.target != p.interface && !p.interface.empty()) {
      about.push_back(p.interface);
    }
    for (const Check& c : p.checks) {
      if (c.name == "device") about.push_back(c.value);
    }
    std::string where = p.target;
    if (!about.empty())
      absl::StrAppend(&where, " (", absl::StrJoin(about, ", "), ")");
    if (first == nullptr) {
      pays.push_back(std::move(where));
      continue;
    }
    blocked.push_back(absl::StrCat(where, ": ", BlockReason(*first)));
  }
  if (report.paths.empty()) {
    return Verdict{false, report.for_peer
                              ? "zero-copy cannot pay: no route to the peer"
                              : "zero-copy cannot pay: no interface is up"};
  }
  const std::string blocked_text = absl::StrJoin(blocked, "; ");
  if (report.for_peer) {
    if (!blocked.empty()) {
      return Verdict{false,
                     absl::StrCat("zero-copy cannot pay to ", blocked_text)};
    }
    return Verdict{
        true, absl::StrCat("zero-copy can pay to ", absl::StrJoin(pays, ", "))};
  }
  if (pays.empty()) {
    return Verdict{
        false,
        absl::StrCat("zero-copy cannot pay on any interface: ", blocked_text)};
  }
  std::string text =
      absl::StrCat("zero-copy can pay on ", absl::StrJoin(pays, ", "));
  if (!blocked.empty()) absl::StrAppend(&text, "; not on ", blocked_text);
  return Verdict{true, std::move(text)};
}

}  // namespace zcplan
