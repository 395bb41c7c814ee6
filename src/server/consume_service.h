// The ConsumeService: topics streamed to subscribers, with or without consumer groups, and
// committed offsets. An adapter onto the broker's subscriptions (broker/subscription.h) and
// group coordinator.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "broker/broker.h"
#include "common/worker_pool.h"
#include "nodata/v1/nodata.grpc.pb.h"

namespace nodata::server {

// Subscribe is registered raw: its responses are encoded by hand (server/record_encoder.h).
class ConsumeService : public nodata::v1::ConsumeService::WithRawCallbackMethod_Subscribe<
                           nodata::v1::ConsumeService::CallbackService> {
 public:
  // Ends every subscription with UNAVAILABLE, for a shutdown.
  virtual void StopAll() = 0;
};

// A requested start position. `group`: whether the subscription has a group (an unset position
// is then the committed offset, else the earliest). INVALID_ARGUMENT for a timestamp out of
// range.
absl::StatusOr<broker::StartSpec> StartFrom(const nodata::v1::StartPosition& p, bool group);

// Subscriptions, commits and group deletes run on `pool`. The broker and the pool must outlive
// the service, and the pool's queued jobs must have run before it goes (they refer to it).
class CallAuth;
// `auth` (auth.h) says who calls and whether they may; it must outlive the service.
std::unique_ptr<ConsumeService> MakeConsumeService(broker::Broker& broker, WorkerPool& pool,
                                                   const CallAuth& auth);

}  // namespace nodata::server
