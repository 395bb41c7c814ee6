// The ConsumeService: topics streamed to subscribers, with or without consumer groups, and
// committed offsets. An adapter onto the broker's storage reads, append notifications and group
// coordinator.
#pragma once

#include <memory>

#include "broker/broker.h"
#include "nodata/v1/nodata.grpc.pb.h"

namespace nodata::server {

// Subscribe is registered raw: its responses are encoded by hand (server/record_encoder.h).
class ConsumeService : public nodata::v1::ConsumeService::WithRawCallbackMethod_Subscribe<
                           nodata::v1::ConsumeService::CallbackService> {
 public:
  // Ends every subscription with UNAVAILABLE, for a shutdown.
  virtual void StopAll() = 0;
};

// `threads` run subscribers' reads. The broker must outlive the service.
std::unique_ptr<ConsumeService> MakeConsumeService(broker::Broker& broker, int threads);

}  // namespace nodata::server
