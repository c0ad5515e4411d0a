// SPDX-License-Identifier: Apache-2.0
// The readers behind `zcdoctor`: each reads one source of the machine (a
// /proc or /sys file, an ioctl, a probe ring, a route, a live send) into the
// plain value that a judge of tune/doctor.h takes, and `Examine` runs them all
// into a `DoctorReport`.
//
// Thread safety: the functions are reentrant. `ProbeRing` and
// `RunSendProbe` make io_uring rings of their own, bound to the calling
// thread while they run.

#ifndef ZCPLAN_TUNE_DOCTOR_SOURCES_H_
#define ZCPLAN_TUNE_DOCTOR_SOURCES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "zcplan/tune/doctor.h"

namespace zcplan {

// The text of a small file (a sysctl, a /sys attribute; at most 64 KiB),
// nullopt when it cannot be opened or read.
std::optional<std::string> ReadSmallFile(const std::string& path);

// uname's release, "" when uname fails.
std::string KernelRelease();

// True when this process may make io_uring rings under
// kernel.io_uring_disabled=1: it has CAP_SYS_ADMIN, or kernel.io_uring_group
// is one of its groups.
bool IoUringPrivileged();

// Makes a ring as the executor does (MakeIoUringRing with the executor's
// default sizes and flags), enables it so that the flags that need SQEs are
// probed, and closes it. The kernel frees a ring's locked memory only some
// time after it is closed, so under a tight RLIMIT_MEMLOCK a ring made right
// after this one has less room.
RingProbe ProbeRing();

// The executor's default notification cap for a ring like `probe`'s with no
// registered buffers (`ChooseNotificationCap` with RLIMIT_MEMLOCK now).
CapChoice DefaultNotificationCap(const RingProbe& probe);

// Every address of every interface (getifaddrs), IPv4 and IPv6.
std::vector<InterfaceAddress> ReadInterfaceAddresses();

// The names of the interfaces that are up, in the kernel's order, once each.
std::vector<std::string> UpInterfaces(
    const std::vector<InterfaceAddress>& addresses);

// The offloads of `interface`, by ETHTOOL_GSSET_INFO + ETHTOOL_GSTRINGS +
// ETHTOOL_GFEATURES, or the legacy ETHTOOL_GSG / GTXCSUM / GTSO / GGSO when
// those fail. Errors: the ioctl's errno, e.g. for a name that is no
// interface.
[[nodiscard]] absl::StatusOr<Offloads> ReadOffloads(
    const std::string& interface);

// What the kernel says of `interface`: flags, /sys/class/net/IF/{type,
// device, uevent} (under `sys_class_net`), the driver and the offloads.
// Parts that cannot be read stay unset.
InterfaceFacts ReadInterface(
    const std::string& interface,
    const std::string& sys_class_net = "/sys/class/net");

// The route to `host` (a name or a numeric address) and `port`: the peer's
// first address, the local address the kernel picks for it (a UDP socket's
// connect + getsockname; nothing is sent), both as numeric text.
struct Route {
  std::string peer_address;
  std::string local_address;
};
// Errors: InvalidArgument "cannot resolve 'HOST': ..." and Unavailable "no
// route to HOST: ..." (the connect's errno).
[[nodiscard]] absl::StatusOr<Route> ReadRoute(const std::string& host,
                                              const std::string& port);

// The probe's zero-copy threshold: buffers below it are sent by copy, so a
// probe of fewer bytes cannot go zero-copy at all.
inline constexpr uint64_t kSendProbeThreshold = 4096;

struct SendProbeOptions {
  uint64_t bytes = uint64_t{4} << 20;          // in all
  uint64_t buffer_bytes = 64 << 10;            // each enqueued buffer
  absl::Duration timeout = absl::Seconds(10);  // connect, and the send
};

// Sends `options.bytes` of zeroes to a receiver at `host`:`port` through the
// executor (zero-copy threshold 4 KiB, adaptive zero-copy off, so every
// buffer tries zero-copy; one buffer per op, so each has its notification;
// IORING_SEND_ZC_REPORT_USAGE where the kernel has it) and returns its
// counters. A failure (cannot connect, io_uring not
// usable, the receiver stopped reading within the timeout) is in `status`.
SendProbeResult RunSendProbe(const std::string& host, const std::string& port,
                             const SendProbeOptions& options = {});

// What to examine.
struct DoctorRequest {
  // Peers to check the routes to; empty: every interface that is up.
  struct Peer {
    std::string host;
    std::string port;  // for the route only ("9" when not given)
  };
  std::vector<Peer> peers;
  // A live send to HOST:PORT (its route is checked as a peer's); no host: no
  // live send.
  std::string probe_host;
  std::string probe_port;
  SendProbeOptions probe;
};

// Reads every source and judges it. Errors: those of `ReadRoute` for a peer
// that does not resolve (InvalidArgument) or has no route (Unavailable).
[[nodiscard]] absl::StatusOr<DoctorReport> Examine(
    const DoctorRequest& request);

}  // namespace zcplan

#endif  // ZCPLAN_TUNE_DOCTOR_SOURCES_H_
