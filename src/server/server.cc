#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>

#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "common/strings.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "server/consume_service.h"
#include "server/grpc_services.h"
#include "server/http_server.h"
#include "spdlog/spdlog.h"

namespace nodata::server {

absl::Status RunServer(const ServerOptions& options) {
  // Block the stop signals in every thread started from here on; the main thread waits for
  // them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Every segment holds file descriptors: allow as many as the hard limit permits.
  rlimit files;
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }

#ifdef NDEBUG
  // abseil's lock-order checking costs a graph lookup per lock; tests and debug builds keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif

  prometheus::Registry registry;
  RETURN_IF_ERROR(PosixFileSystem().CreateDirs(options.broker.data_dir));
  spdlog::info("opening data directory {}", options.broker.data_dir);
  ASSIGN_OR_RETURN(std::unique_ptr<broker::Broker> broker,
                   broker::Broker::Open(options.broker, PosixFileSystem(), registry));

  auto ingest = MakeIngestService(*broker, registry, options.stream_inflight_batches);
  // Reads for subscribers and readers run here, off gRPC's threads and the sync threads.
  auto egress = std::make_unique<WorkerPool>(options.egress_threads);
  auto topics = MakeTopicService(*broker, *egress);
  auto consume = MakeConsumeService(*broker, *egress);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &port);
  // gRPC sets SO_REUSEPORT by default: a second server on the same port would then start and
  // share the connections with the first. A port in use must be an error.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(ingest.get());
  builder.RegisterService(topics.get());
  builder.RegisterService(consume.get());
  // Dead subscribers (a crashed host, a cut network) are noticed by keepalive pings, which end
  // their streams and so their group membership.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, options.keepalive_ms);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, options.keepalive_ms);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Room for a full batch plus protobuf framing; larger messages get RESOURCE_EXHAUSTED.
  const uint64_t max_message = options.broker.max_batch_bytes + (options.broker.max_batch_events * 64) +
                               (1u << 20);
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<uint64_t>(max_message, std::numeric_limits<int>::max())));
  builder.SetMaxSendMessageSize(std::numeric_limits<int>::max());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    return absl::UnavailableError(StrCat("cannot listen for gRPC on ", options.listen,
                                         " (address in use, or not a local address)"));
  }
  broker::Broker& b = *broker;
  ASSIGN_OR_RETURN(std::unique_ptr<HttpServer> http,
                   HttpServer::Start(options.http, [&registry, &b] {
                     b.RefreshMetrics();  // gauges are set at scrape time
                     return prometheus::TextSerializer().Serialize(registry.Collect());
                   }));

  const std::string grpc_address =
      StrCat(options.listen.substr(0, options.listen.rfind(':')), ":", port);
  std::printf("nodata ready grpc=%s http=%s\n", grpc_address.c_str(), http->address().c_str());
  std::fflush(stdout);
  spdlog::info("serving gRPC on {} and HTTP on {}", grpc_address, http->address());

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("signal {}: shutting down", sig);
  consume->StopAll();
  // Calls still open after a second (publish streams a producer keeps open) are cancelled: a batch
  // already handed to the broker is still stored, and a producer that missed its ack retries with
  // the same ids, which dedupe.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server->Wait();
  // Runs the queued jobs (final commits) while the services and the broker are alive.
  egress.reset();
  consume.reset();
  spdlog::debug("gRPC stopped");
  http.reset();
  spdlog::debug("HTTP stopped");
  broker->SyncAll();
  broker.reset();
  spdlog::info("stopped");
  return absl::OkStatus();
}

}  // namespace nodata::server
