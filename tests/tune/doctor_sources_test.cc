// SPDX-License-Identifier: Apache-2.0
// zcdoctor's readers on this machine: files, the loopback interface (every
// Linux has one), routes, the probe ring.

#include "zcplan/tune/doctor_sources.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "zcplan/tune/doctor.h"
#include "zcplan/uring/ring.h"

namespace zcplan {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

TEST(ReadSmallFileTest, ReadsAndMisses) {
  const std::optional<std::string> status = ReadSmallFile("/proc/self/status");
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(ParseCapEff(*status).has_value());
  EXPECT_EQ(ReadSmallFile("/no/such/file"), std::nullopt);
}

TEST(KernelReleaseTest, IsThisKernels) {
  const std::string release = KernelRelease();
  EXPECT_NE(release, "");
  EXPECT_NE(JudgeKernelRelease(release).value, "unknown");
}

TEST(InterfacesTest, LoopbackIsUpAndCopies) {
  const std::vector<InterfaceAddress> addresses = ReadInterfaceAddresses();
  const std::vector<std::string> up = UpInterfaces(addresses);
  ASSERT_THAT(up, Contains("lo"));
  const InterfaceFacts lo = ReadInterface("lo");
  EXPECT_TRUE(lo.up);
  EXPECT_TRUE(lo.loopback);
  EXPECT_EQ(lo.arp_type, 772);
  EXPECT_EQ(ClassifyDevice(lo), DeviceKind::kLoopback);
  ASSERT_TRUE(lo.offloads.has_value()) << lo.offloads_error;
  EXPECT_EQ(lo.offloads->scatter_gather, true);
}

TEST(InterfacesTest, UnknownInterfaceHasNoOffloads) {
  EXPECT_FALSE(ReadOffloads("nosuchif0").ok());
  const InterfaceFacts f = ReadInterface("nosuchif0");
  EXPECT_FALSE(f.up);
  EXPECT_FALSE(f.arp_type.has_value());
  EXPECT_FALSE(f.offloads.has_value());
  EXPECT_NE(f.offloads_error, "");
}

TEST(InterfacesTest, SysfsFilesComeFromTheGivenDirectory) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string root = std::string(tmp != nullptr ? tmp : "/tmp") + "/net";
  ASSERT_EQ(mkdir(root.c_str(), 0755) == 0 || errno == EEXIST, true);
  ASSERT_EQ(mkdir((root + "/lo").c_str(), 0755) == 0 || errno == EEXIST, true);
  ASSERT_EQ(mkdir((root + "/lo/device").c_str(), 0755) == 0 || errno == EEXIST,
            true);
  std::ofstream(root + "/lo/type") << "1\n";
  std::ofstream(root + "/lo/uevent") << "DEVTYPE=bridge\nINTERFACE=lo\n";
  const InterfaceFacts f = ReadInterface("lo", root);
  EXPECT_EQ(f.arp_type, 1);
  EXPECT_TRUE(f.has_device);
  EXPECT_THAT(f.uevent, HasSubstr("DEVTYPE=bridge"));
  EXPECT_TRUE(f.loopback);  // from the kernel, not the files
}

TEST(RouteTest, LoopbackRouteIsLo) {
  absl::StatusOr<Route> route = ReadRoute("127.0.0.1", "9");
  ASSERT_TRUE(route.ok()) << route.status();
  EXPECT_EQ(route->peer_address, "127.0.0.1");
  EXPECT_EQ(route->local_address, "127.0.0.1");
  EXPECT_EQ(*InterfaceForRoute(route->peer_address, route->local_address,
                               ReadInterfaceAddresses()),
            "lo");
}

TEST(RouteTest, UnresolvableIsInvalidArgument) {
  const absl::StatusOr<Route> route = ReadRoute("no-such-host.invalid", "9");
  EXPECT_TRUE(absl::IsInvalidArgument(route.status())) << route.status();
  EXPECT_THAT(route.status().message(), HasSubstr("cannot resolve"));
}

TEST(ProbeRingTest, AgreesWithTheCap) {
  const RingProbe probe = ProbeRing();
  if (!probe.status.ok()) {
    GTEST_SKIP() << "io_uring is not usable here: " << probe.status;
  }
  EXPECT_GT(probe.features.sq_entries, 0u);
  EXPECT_TRUE(probe.features.send_zc);
  // The ring was enabled, so the flags that need SQEs were probed.
  EXPECT_EQ(probe.features.setup_flags & IORING_SETUP_R_DISABLED, 0u);
  const CapChoice cap = DefaultNotificationCap(probe);
  EXPECT_GT(cap.cap, 0u);
  EXPECT_NE(cap.description, "");
}

}  // namespace
}  // namespace zcplan
