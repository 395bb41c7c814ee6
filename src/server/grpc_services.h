// gRPC adapters of the public API (proto/nodata/v1) onto the broker, the components and the
// aggregations. No storage logic here.
#pragma once

#include <memory>

#include "broker/broker.h"
#include "common/worker_pool.h"
#include "nodata/v1/nodata.grpc.pb.h"

namespace prometheus {
class Registry;
}

namespace nodata::components {
class Manager;
}

namespace nodata::aggregate {
class Manager;
}

namespace nodata::server {

class CallAuth;

// Every service asks `auth` (auth.h) who calls and whether they may; it must outlive them.
// Both services are safe for concurrent use; the broker and registry must outlive them.
// ReadTopic's reads run on `pool`, which must outlive the topic service.
std::unique_ptr<nodata::v1::IngestService::CallbackService> MakeIngestService(
    broker::Broker& broker, prometheus::Registry& registry, int stream_inflight_batches,
    const CallAuth& auth);
std::unique_ptr<nodata::v1::TopicService::CallbackService> MakeTopicService(
    broker::Broker& broker, WorkerPool& pool, const CallAuth& auth);
// The ComponentService (component_service.cc): adds, updates, resets and removes run on `pool`.
// The manager and the pool must outlive the service, and the pool's queued jobs must have run
// before it goes.
std::unique_ptr<nodata::v1::ComponentService::CallbackService> MakeComponentService(
    components::Manager& manager, WorkerPool& pool, const CallAuth& auth);
// The AggregationService and QueryService (aggregation_service.cc): adds, resets and removes run
// on `pool`; each Watch stream on a thread of its own, which the query service's destructor
// waits for (after the gRPC server has shut down). The manager and the pool must outlive them.
std::unique_ptr<nodata::v1::AggregationService::CallbackService> MakeAggregationService(
    aggregate::Manager& manager, WorkerPool& pool, const CallAuth& auth);
std::unique_ptr<nodata::v1::QueryService::CallbackService> MakeQueryService(
    aggregate::Manager& manager, const CallAuth& auth);

}  // namespace nodata::server
