// gRPC adapters of the public API (proto/nodata/v1) onto the broker. No storage logic here.
#pragma once

#include <memory>

#include "broker/broker.h"
#include "common/worker_pool.h"
#include "nodata/v1/nodata.grpc.pb.h"

namespace prometheus {
class Registry;
}

namespace nodata::server {

// Both services are safe for concurrent use; the broker and registry must outlive them.
// ReadTopic's reads run on `pool`, which must outlive the topic service.
std::unique_ptr<nodata::v1::IngestService::CallbackService> MakeIngestService(
    broker::Broker& broker, prometheus::Registry& registry, int stream_inflight_batches);
std::unique_ptr<nodata::v1::TopicService::CallbackService> MakeTopicService(
    broker::Broker& broker, WorkerPool& pool);

}  // namespace nodata::server
