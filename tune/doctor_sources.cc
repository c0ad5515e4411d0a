// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tune/doctor_sources.h"

#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netdb.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "zcplan/uring/executor.h"
#include "zcplan/uring/io_uring_ring.h"
#include "zcplan/uring/net.h"
#include "zcplan/uring/notification_budget.h"

namespace zcplan {
namespace {

constexpr int kCapIpcLock = 14;
constexpr int kCapSysAdmin = 21;
constexpr size_t kMaxSmallFile = 64 << 10;
// More feature names than any kernel has (about 70 today).
constexpr uint32_t kMaxFeatures = 4096;

// An ethtool ioctl on `interface` with `data` as its argument; 0 or -errno.
int Ethtool(int sock, const std::string& interface, void* data) {
  ifreq ifr;
  std::memset(&ifr, 0, sizeof(ifr));
  if (interface.size() >= sizeof(ifr.ifr_name)) return -ENAMETOOLONG;
  std::memcpy(ifr.ifr_name, interface.data(), interface.size());
  ifr.ifr_data = static_cast<char*>(data);
  return ioctl(sock, SIOCETHTOOL, &ifr) == 0 ? 0 : -errno;
}

// The feature names and active words of ETHTOOL_GFEATURES; -errno on
// failure.
int ReadFeatureBits(int sock, const std::string& interface,
                    std::vector<std::string>* names,
                    std::vector<uint32_t>* active) {
  // ethtool_sset_info is followed by one u32 per set asked for.
  alignas(ethtool_sset_info) unsigned char
      info_buf[sizeof(ethtool_sset_info) + sizeof(uint32_t)] = {};
  auto* info = reinterpret_cast<ethtool_sset_info*>(info_buf);
  info->cmd = ETHTOOL_GSSET_INFO;
  info->sset_mask = uint64_t{1} << ETH_SS_FEATURES;
  int ret = Ethtool(sock, interface, info);
  if (ret < 0) return ret;
  if ((info->sset_mask & (uint64_t{1} << ETH_SS_FEATURES)) == 0) {
    return -EOPNOTSUPP;
  }
  const uint32_t count = info->data[0];
  if (count == 0 || count > kMaxFeatures) return -ERANGE;

  std::vector<unsigned char> strings_buf(sizeof(ethtool_gstrings) +
                                         size_t{count} * ETH_GSTRING_LEN);
  auto* strings = reinterpret_cast<ethtool_gstrings*>(strings_buf.data());
  strings->cmd = ETHTOOL_GSTRINGS;
  strings->string_set = ETH_SS_FEATURES;
  strings->len = count;
  ret = Ethtool(sock, interface, strings);
  if (ret < 0) return ret;

  const uint32_t blocks = (count + 31) / 32;
  std::vector<unsigned char> features_buf(
      sizeof(ethtool_gfeatures) +
      size_t{blocks} * sizeof(ethtool_get_features_block));
  auto* features = reinterpret_cast<ethtool_gfeatures*>(features_buf.data());
  features->cmd = ETHTOOL_GFEATURES;
  features->size = blocks;
  ret = Ethtool(sock, interface, features);
  if (ret < 0) return ret;

  names->clear();
  for (uint32_t i = 0; i < std::min(count, strings->len); ++i) {
    const char* s = reinterpret_cast<const char*>(strings->data) +
                    size_t{i} * ETH_GSTRING_LEN;
    names->emplace_back(s, strnlen(s, ETH_GSTRING_LEN));
  }
  active->clear();
  for (uint32_t i = 0; i < std::min(blocks, features->size); ++i) {
    active->push_back(features->features[i].active);
  }
  return 0;
}

// One legacy ethtool value (ETHTOOL_GSG, ...); nullopt when refused.
std::optional<bool> LegacyValue(int sock, const std::string& interface,
                                uint32_t cmd) {
  ethtool_value value{};
  value.cmd = cmd;
  if (Ethtool(sock, interface, &value) < 0) return std::nullopt;
  return value.data != 0;
}

// Numeric text of an address, without an IPv6 scope ("%eth0").
std::string NumericHost(const sockaddr* addr, socklen_t length) {
  char host[NI_MAXHOST];
  if (getnameinfo(addr, length, host, sizeof(host), nullptr, 0,
                  NI_NUMERICHOST) != 0) {
    return "";
  }
  std::string text(host);
  return text.substr(0, text.find('%'));
}

socklen_t AddressLength(const sockaddr* addr) {
  return addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6)
                                     : sizeof(sockaddr_in);
}

}  // namespace

std::optional<std::string> ReadSmallFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) return std::nullopt;
  std::string text;
  char buf[4096];
  while (text.size() < kMaxSmallFile) {
    const ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

std::string KernelRelease() {
  utsname u;
  if (uname(&u) != 0) return "";
  return u.release;
}

bool IoUringPrivileged() {
  const std::optional<std::string> status = ReadSmallFile("/proc/self/status");
  const std::optional<uint64_t> caps =
      status.has_value() ? ParseCapEff(*status) : std::nullopt;
  if (caps.has_value() && ((*caps >> kCapSysAdmin) & 1)) return true;
  const std::optional<std::string> group =
      ReadSmallFile("/proc/sys/kernel/io_uring_group");
  int64_t gid = -1;
  if (!group.has_value() ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(*group), &gid) || gid < 0) {
    return false;
  }
  if (static_cast<int64_t>(getegid()) == gid) return true;
  std::vector<gid_t> groups(static_cast<size_t>(getgroups(0, nullptr)) + 1);
  const int n = getgroups(static_cast<int>(groups.size()), groups.data());
  for (int i = 0; i < n; ++i) {
    if (static_cast<int64_t>(groups[i]) == gid) return true;
  }
  return false;
}

RingProbe ProbeRing() {
  const ExecutorOptions defaults;
  IoUringRingOptions options;
  options.sq_entries = defaults.sq_entries;
  options.cq_entries = defaults.sq_entries * defaults.cq_factor;
  options.defer_taskrun = defaults.defer_taskrun;
  RingProbe probe;
  absl::StatusOr<std::unique_ptr<Ring>> ring = MakeIoUringRing(options);
  if (!ring.ok()) {
    probe.status = ring.status();
    return probe;
  }
  // A SINGLE_ISSUER ring is made disabled; the first submit enables it and
  // probes the flags that need SQEs.
  const int ret = (*ring)->SubmitAndWait(0, 0);
  if (ret < 0) {
    probe.status = absl::ErrnoToStatus(-ret, "enabling the probe ring");
  }
  probe.features = (*ring)->features();
  return probe;
}

CapChoice DefaultNotificationCap(const RingProbe& probe) {
  return ChooseNotificationCap(0, MemlockSoftLimit(),
                               probe.features.memlock_charged,
                               probe.features.memlock_bytes, 0);
}

std::vector<InterfaceAddress> ReadInterfaceAddresses() {
  std::vector<InterfaceAddress> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_name == nullptr) continue;
    InterfaceAddress entry;
    entry.interface = a->ifa_name;
    entry.loopback = (a->ifa_flags & IFF_LOOPBACK) != 0;
    entry.up = (a->ifa_flags & IFF_UP) != 0;
    if (a->ifa_addr != nullptr && (a->ifa_addr->sa_family == AF_INET ||
                                   a->ifa_addr->sa_family == AF_INET6)) {
      entry.address = NumericHost(a->ifa_addr, AddressLength(a->ifa_addr));
    }
    out.push_back(std::move(entry));
  }
  freeifaddrs(list);
  return out;
}

std::vector<std::string> UpInterfaces(
    const std::vector<InterfaceAddress>& addresses) {
  std::vector<std::string> names;
  for (const InterfaceAddress& a : addresses) {
    if (!a.up) continue;
    if (std::find(names.begin(), names.end(), a.interface) == names.end()) {
      names.push_back(a.interface);
    }
  }
  return names;
}

absl::StatusOr<Offloads> ReadOffloads(const std::string& interface) {
  UniqueFd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) return absl::ErrnoToStatus(errno, "socket");
  std::vector<std::string> names;
  std::vector<uint32_t> active;
  const int ret = ReadFeatureBits(sock.get(), interface, &names, &active);
  if (ret == 0) return OffloadsFromFeatures(names, active);
  Offloads legacy;
  legacy.scatter_gather = LegacyValue(sock.get(), interface, ETHTOOL_GSG);
  legacy.tx_checksum = LegacyValue(sock.get(), interface, ETHTOOL_GTXCSUM);
  legacy.tso = LegacyValue(sock.get(), interface, ETHTOOL_GTSO);
  legacy.gso = LegacyValue(sock.get(), interface, ETHTOOL_GGSO);
  if (!legacy.scatter_gather.has_value() && !legacy.tx_checksum.has_value() &&
      !legacy.tso.has_value() && !legacy.gso.has_value()) {
    return absl::ErrnoToStatus(-ret, "SIOCETHTOOL ETHTOOL_GFEATURES");
  }
  return legacy;
}

InterfaceFacts ReadInterface(const std::string& interface,
                             const std::string& sys_class_net) {
  InterfaceFacts facts;
  facts.name = interface;
  UniqueFd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq ifr;
  std::memset(&ifr, 0, sizeof(ifr));
  if (sock.get() >= 0 && interface.size() < sizeof(ifr.ifr_name)) {
    std::memcpy(ifr.ifr_name, interface.data(), interface.size());
    if (ioctl(sock.get(), SIOCGIFFLAGS, &ifr) == 0) {
      facts.up = (ifr.ifr_flags & IFF_UP) != 0;
      facts.loopback = (ifr.ifr_flags & IFF_LOOPBACK) != 0;
    }
    ethtool_drvinfo drvinfo{};
    drvinfo.cmd = ETHTOOL_GDRVINFO;
    if (Ethtool(sock.get(), interface, &drvinfo) == 0) {
      facts.driver.assign(drvinfo.driver,
                          strnlen(drvinfo.driver, sizeof(drvinfo.driver)));
    }
  }
  const std::string dir = absl::StrCat(sys_class_net, "/", interface);
  int type = 0;
  const std::optional<std::string> type_text = ReadSmallFile(dir + "/type");
  if (type_text.has_value() &&
      absl::SimpleAtoi(absl::StripAsciiWhitespace(*type_text), &type)) {
    facts.arp_type = type;
  }
  facts.has_device = access((dir + "/device").c_str(), F_OK) == 0;
  facts.uevent = ReadSmallFile(dir + "/uevent").value_or("");
  absl::StatusOr<Offloads> offloads = ReadOffloads(interface);
  if (offloads.ok()) {
    facts.offloads = *offloads;
  } else {
    facts.offloads_error = std::string(offloads.status().message());
  }
  return facts;
}

absl::StatusOr<Route> ReadRoute(const std::string& host,
                                const std::string& port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* list = nullptr;
  const int gai = getaddrinfo(host.c_str(), port.c_str(), &hints, &list);
  if (gai != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve '", host, "': ", gai_strerror(gai)));
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> owner(list, freeaddrinfo);
  Route route;
  route.peer_address = NumericHost(list->ai_addr, list->ai_addrlen);
  UniqueFd sock(socket(list->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) return absl::ErrnoToStatus(errno, "socket");
  if (connect(sock.get(), list->ai_addr, list->ai_addrlen) != 0) {
    return absl::UnavailableError(
        absl::StrCat("no route to ", host, ": ", std::strerror(errno)));
  }
  sockaddr_storage local{};
  socklen_t length = sizeof(local);
  if (getsockname(sock.get(), reinterpret_cast<sockaddr*>(&local), &length) !=
      0) {
    return absl::ErrnoToStatus(errno, "getsockname");
  }
  route.local_address =
      NumericHost(reinterpret_cast<const sockaddr*>(&local), length);
  return route;
}

SendProbeResult RunSendProbe(const std::string& host, const std::string& port,
                             const SendProbeOptions& options) {
  SendProbeResult result;
  result.peer = absl::StrCat(
      host.find(':') != std::string::npos ? absl::StrCat("[", host, "]") : host,
      ":", port);
  result.bytes = options.bytes;
  absl::StatusOr<UniqueFd> fd = ConnectTcp(host, port, options.timeout);
  if (!fd.ok()) {
    result.status = fd.status();
    return result;
  }
  absl::Status first_failure;
  ExecutorOptions eo;
  eo.on_release_batch = [&first_failure](ConnectionId,
                                         absl::Span<const uint64_t>,
                                         const absl::Status& status) {
    if (!status.ok() && first_failure.ok()) first_failure = status;
  };
  // The kernel unaccounts a closed ring (ProbeRing's, a moment ago) from
  // RLIMIT_MEMLOCK only when its exit work has run, after close() returns:
  // under a limit that holds one ring, this one fails with ENOMEM until then.
  absl::StatusOr<std::unique_ptr<Executor>> executor = Executor::Create(eo);
  for (int retry = 0;
       retry < 50 && absl::IsResourceExhausted(executor.status()); ++retry) {
    absl::SleepFor(absl::Milliseconds(10));
    executor = Executor::Create(eo);
  }
  if (!executor.ok()) {
    result.status = executor.status();
    return result;
  }
  Executor& ex = **executor;
  ConnectionOptions co;
  co.plan.zc_threshold = kSendProbeThreshold;
  // One buffer per op: a notification for each, so the count of copied
  // ones is a sample of the path, not of two large ops.
  co.plan.max_iovs_per_op = 1;
  co.adaptive_zero_copy = false;
  absl::StatusOr<ConnectionId> id = ex.Attach(fd->get(), co);
  if (!id.ok()) {
    result.status = id.status();
    return result;
  }
  const uint64_t buffer = std::max<uint64_t>(options.buffer_bytes, 1);
  // Kept (leaked) if the kernel may still read it when the executor ends.
  std::unique_ptr<unsigned char[]> data(new unsigned char[options.bytes]());
  uint64_t token = 0;
  for (uint64_t offset = 0; offset < options.bytes; offset += buffer) {
    const uint64_t length = std::min(buffer, options.bytes - offset);
    absl::Status s = ex.Enqueue(*id, data.get() + offset, length, token++);
    if (!s.ok()) {
      result.status = s;
      break;
    }
  }
  if (result.status.ok()) result.status = ex.Drain(options.timeout);
  if (result.status.ok()) result.status = first_failure;
  absl::StatusOr<SendStats> stats = ex.connection_stats(*id);
  if (stats.ok()) {
    result.bytes_zero_copy = stats->bytes_zero_copy;
    result.bytes_copied = stats->bytes_copied;
    result.notifications = stats->notifications;
    result.copied_notifications = stats->copied_notifications;
    result.fallbacks_unsupported = stats->fallbacks_unsupported;
    result.fallbacks_enomem = stats->fallbacks_enomem;
  }
  result.report_usage = ex.features().zc_report_usage;
  // A stalled receiver keeps zero-copy buffers referenced: reset it, so that
  // the memory (`data`) is never freed under the kernel.
  if (!ex.Idle()) (void)ex.Abort(*id);
  if (!ex.Shutdown(options.timeout).ok()) (void)data.release();
  executor->reset();
  if (!result.status.ok()) {
    result.status = absl::Status(result.status.code(),
                                 absl::StrCat("sending to ", result.peer, ": ",
                                              result.status.message()));
  }
  return result;
}

absl::StatusOr<DoctorReport> Examine(const DoctorRequest& request) {
  DoctorReport report;
  report.host.push_back(JudgeKernelRelease(KernelRelease()));
  report.host.push_back(
      JudgeIoUringDisabled(ReadSmallFile("/proc/sys/kernel/io_uring_disabled"),
                           IoUringPrivileged()));
  const RingProbe ring = ProbeRing();
  for (Check& c : JudgeRing(ring)) report.host.push_back(std::move(c));
  const std::optional<std::string> status = ReadSmallFile("/proc/self/status");
  const std::optional<uint64_t> caps =
      status.has_value() ? ParseCapEff(*status) : std::nullopt;
  const bool charged =
      ring.status.ok() ? ring.features.memlock_charged
                       : !(caps.has_value() && ((*caps >> kCapIpcLock) & 1));
  report.host.push_back(JudgeMemlock(MemlockSoftLimit(), charged));
  report.host.push_back(JudgeCapIpcLock(caps));
  report.host.push_back(JudgeNotificationCap(DefaultNotificationCap(ring)));
  report.host.push_back(
      JudgeOptmemMax(ReadSmallFile("/proc/sys/net/core/optmem_max")));

  const std::vector<InterfaceAddress> addresses = ReadInterfaceAddresses();
  std::vector<DoctorRequest::Peer> peers = request.peers;
  if (!request.probe_host.empty()) {
    bool listed = false;
    for (const DoctorRequest::Peer& p : peers)
      listed |= p.host == request.probe_host;
    if (!listed) peers.push_back({request.probe_host, request.probe_port});
  }
  if (peers.empty()) {
    for (const std::string& name : UpInterfaces(addresses)) {
      report.paths.push_back(
          PathReport{name, name, JudgeInterface(ReadInterface(name))});
    }
    return report;
  }
  report.for_peer = true;
  for (const DoctorRequest::Peer& peer : peers) {
    absl::StatusOr<Route> route = ReadRoute(peer.host, peer.port);
    if (!route.ok()) return route.status();
    PathReport path;
    path.target = peer.host;
    absl::StatusOr<std::string> interface =
        InterfaceForRoute(route->peer_address, route->local_address, addresses);
    if (!interface.ok()) {
      path.checks.push_back(
          Check{"route", CheckStatus::kWarning,
                std::string(interface.status().message()),
                "cannot tell which interface the route uses"});
    } else {
      path.interface = *interface;
      path.checks.push_back(
          Check{"route", CheckStatus::kOk,
                absl::StrCat(route->peer_address, " via ", *interface, " from ",
                             route->local_address),
                ""});
      for (Check& c : JudgeInterface(ReadInterface(*interface))) {
        path.checks.push_back(std::move(c));
      }
    }
    if (peer.host == request.probe_host) {
      path.checks.push_back(JudgeSendProbe(
          RunSendProbe(request.probe_host, request.probe_port, request.probe)));
    }
    report.paths.push_back(std::move(path));
  }
  return report;
}

}  // namespace zcplan
