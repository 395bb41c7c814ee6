#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "aggregate/manager.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/time.h"
#include "components/manager.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "server/consume_service.h"
#include "server/audit_log.h"
#include "server/auth.h"
#include "server/grpc_services.h"
#include "server/http_server.h"
#include "server/kafka_server.h"
#include "wasm/runtime.h"
#include "spdlog/spdlog.h"

namespace nodata::server {
namespace {

// AddComponent and UpdateComponent carry a whole module: requests hold modules of up to this
// size (the native tier's own limit, wasm::CompileLimits) whatever --max-batch-bytes is.
constexpr uint64_t kMaxModuleMessageBytes = 16ull << 20;

// Listening where other machines reach the server needs TLS and a way to tell clients apart
// (client certificates), or the operator's --insecure.
absl::Status CheckExposure(const ServerOptions& options) {
  std::string exposed;
  for (const std::string* address : {&options.listen, &options.http}) {
    if (!IsLoopbackAddress(*address)) exposed = *address;
  }
  // The Kafka listener has neither TLS nor SASL yet: only loopback, or --insecure.
  if (!options.kafka.empty() && !IsLoopbackAddress(options.kafka)) {
    if (!options.insecure) {
      return absl::FailedPreconditionError(StrCat(
          "refusing to serve Kafka on ", options.kafka, ", which other machines can reach: the "
          "Kafka listener has no TLS or authentication yet. Listen on a loopback address, or "
          "give --insecure to serve anyway"));
    }
    spdlog::warn("serving Kafka on {} without TLS or authentication (--insecure)",
                 options.kafka);
  }
  if (exposed.empty()) return absl::OkStatus();
  const bool secured =
      options.tls.enabled() && (!options.tls.client_ca.empty() || options.auth == "tokens");
  if (secured) return absl::OkStatus();
  if (options.insecure) {
    spdlog::warn("serving on {} without {} (--insecure): anyone who reaches it can publish, "
                 "read and delete topics",
                 exposed, options.tls.enabled() ? "client authentication" : "TLS");
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(StrCat(
      "refusing to serve on ", exposed, ", which other machines can reach, without ",
      options.tls.enabled() ? "client authentication" : "TLS and client authentication",
      ": anyone who reaches it could publish, read and delete topics and run code. Give "
      "--tls-cert and --tls-key with --tls-client-ca or --auth tokens, listen on a loopback "
      "address, or give --insecure to serve anyway"));
}

// Where program components reach a server that speaks TLS: a unix socket in a directory only
// the server's user can enter (the data directory's run/, or a new one under /tmp when that path
// is too long for a socket address).
absl::StatusOr<std::string> ProgramSocketPath(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::absolute(data_dir, ec) / "run";
  constexpr size_t kMaxSocketPath = sizeof(sockaddr_un::sun_path) - 1;
  if ((dir / "grpc.sock").string().size() > kMaxSocketPath) {
    char tmpl[] = "/tmp/nodata-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      return absl::InternalError(StrCat("cannot make a directory under /tmp for the program "
                                        "components' socket: ", std::strerror(errno)));
    }
    return StrCat(tmpl, "/grpc.sock");
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError(StrCat("cannot make ", dir.string(), ": ", std::strerror(errno)));
  }
  ::chmod(dir.c_str(), 0700);
  return (dir / "grpc.sock").string();
}

}  // namespace

absl::Status RunServer(const ServerOptions& options) {
  // Block the stop signals in every thread started from here on; the main thread waits for
  // them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);  // reload
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Segment files, sockets and state stores hold descriptors: allow as many as the hard limit
  // permits (the hot tier keeps half of them at most, --max-open-files).
  rlimit files;
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }

#ifdef NDEBUG
  // abseil's lock-order checking costs a graph lookup per lock; tests and debug builds keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif

  if (options.auth != "none" && options.auth != "tokens") {
    return absl::InvalidArgumentError(
        StrCat("--auth must be none or tokens; got \"", options.auth, "\""));
  }
  if (options.metrics_auth != "none" && options.metrics_auth != "tokens") {
    return absl::InvalidArgumentError(
        StrCat("--metrics-auth must be none or tokens; got \"", options.metrics_auth, "\""));
  }
  RETURN_IF_ERROR(CheckExposure(options));
  if (!options.kafka.empty() && options.auth != "none") {
    return absl::FailedPreconditionError(
        "--kafka with --auth tokens: the Kafka listener cannot check tokens yet (SASL is not "
        "served); run it with --auth none on a loopback address");
  }
  std::unique_ptr<TlsMaterial> tls;
  if (options.tls.enabled() || !options.tls.key.empty() || !options.tls.client_ca.empty()) {
    if (!options.tls.enabled() || options.tls.key.empty()) {
      return absl::InvalidArgumentError(
          "--tls-cert and --tls-key go together, and --tls-client-ca needs them");
    }
    ASSIGN_OR_RETURN(tls, TlsMaterial::Load(options.tls));
    spdlog::info("TLS certificate: {}{}", tls->Describe(),
                 tls->requires_client_certificates() ? "; client certificates required" : "");
  }

  prometheus::Registry registry;
  auto& tls_reloads = prometheus::BuildCounter()
                          .Name("nodata_tls_reloads_total")
                          .Help("TLS files read again on SIGHUP, by result")
                          .Register(registry);
  auto& tls_expiry = prometheus::BuildGauge()
                         .Name("nodata_tls_certificate_expiry_seconds")
                         .Help("notAfter of the served certificate, Unix seconds")
                         .Register(registry);
  if (tls) tls_expiry.Add({}).Set(static_cast<double>(tls->NotAfterSeconds()));
  FileSystem& fs = options.file_system ? *options.file_system : PosixFileSystem();
  RETURN_IF_ERROR(fs.CreateDirs(options.broker.data_dir));
  spdlog::info("opening data directory {}", options.broker.data_dir);
  ASSIGN_OR_RETURN(std::unique_ptr<broker::Broker> broker,
                   broker::Broker::Open(options.broker, fs, registry));

  // One WebAssembly runtime, and so one compiled-module cache, for components and reducers.
  wasm::RuntimeOptions runtime_options;
  runtime_options.cache_dir = StrCat(options.broker.data_dir, "/wasm-cache");
  ASSIGN_OR_RETURN(std::unique_ptr<wasm::Runtime> runtime,
                   wasm::Runtime::Create(std::move(runtime_options)));

  // With --auth tokens every call names its principal with a bearer token (auth.h).
  std::unique_ptr<Authenticator> authenticator;
  std::unique_ptr<JwtVerifier> jwt;
  if (!options.jwt.key_files.empty()) {
    if (options.auth != "tokens") {
      return absl::InvalidArgumentError("--jwt-key needs --auth tokens");
    }
    ASSIGN_OR_RETURN(jwt, JwtVerifier::Load(options.jwt));
  }
  if (options.auth == "tokens") {
    storage::TokenStore& tokens = broker->token_store();
    authenticator = std::make_unique<Authenticator>(
        [&tokens] { return tokens.List(); }, [] { return absl::ToUnixMicros(absl::Now()); },
        1'000'000, jwt.get());
  }
  // The registered components start here and run until shutdown.
  components::ManagerOptions component_options;
  component_options.data_dir = options.broker.data_dir;
  component_options.runtime = runtime.get();
  component_options.max_event_bytes = options.broker.max_event_bytes;
  // A program component calls as the principal that registered it, with that principal's
  // scopes then (every scope when it was registered without authentication).
  if (authenticator) {
    component_options.program_token = [a = authenticator.get()](
                                          const components::ComponentSpec& spec) {
      Principal p{spec.owner.empty() ? StrCat("component ", spec.name) : spec.owner, {Scope{}}};
      if (!spec.owner.empty()) {
        absl::StatusOr<std::vector<Scope>> scopes = ParseScopes(spec.owner_scopes);
        p.scopes = scopes.ok() ? *std::move(scopes) : std::vector<Scope>{};
        // Its own consumer group (NODATA_GROUP), whatever the owner's group scopes.
        p.scopes.push_back(Scope{Action::kGroup, StrCat("component.", spec.name), false});
      }
      return a->IssueEphemeral(spec.name, std::move(p));
    };
  }
  ASSIGN_OR_RETURN(std::unique_ptr<components::Manager> components,
                   components::Manager::Open(std::move(component_options), *broker, fs,
                                             registry));
  // The registered aggregations restore their state and resume here.
  aggregate::ManagerOptions aggregate_options;
  aggregate_options.data_dir = options.broker.data_dir;
  aggregate_options.runtime = runtime.get();
  aggregate_options.state_cache_bytes = options.state_cache_bytes;
  aggregate_options.max_event_bytes = options.broker.max_event_bytes;
  ASSIGN_OR_RETURN(std::unique_ptr<aggregate::Manager> aggregations,
                   aggregate::Manager::Open(std::move(aggregate_options), *broker, fs,
                                            registry));

  // Limits per principal, when any is set.
  std::unique_ptr<Quotas> quotas;
  if (options.quotas.publish_bytes_per_second > 0 || options.quotas.requests_per_second > 0 ||
      options.quotas.streams > 0) {
    quotas = std::make_unique<Quotas>(
        options.quotas, [] { return MonotonicNanos() / 1000; }, &registry);
  }
  const CallAuth auth(authenticator.get(), quotas.get());
  // Admin actions and refusals, one JSON line each.
  std::unique_ptr<AuditLog> audit;
  const std::string audit_path =
      options.audit_log.empty() ? (options.auth == "tokens" ? AuditLogPath(options.broker.data_dir)
                                                            : std::string())
      : options.audit_log == "none" ? std::string()
                                    : options.audit_log;
  if (!audit_path.empty()) {
    ASSIGN_OR_RETURN(audit, AuditLog::Open(audit_path));
    spdlog::info("audit log: {}", audit_path);
  }
  auto ingest = MakeIngestService(*broker, registry, options.stream_inflight_batches, auth);
  // Reads for subscribers and readers run here, off gRPC's threads and the sync threads.
  auto egress = std::make_unique<WorkerPool>(options.egress_threads);
  auto topics = MakeTopicService(*broker, *egress, auth);
  auto consume = MakeConsumeService(*broker, *egress, auth);
  // Adding or updating a component loads its module; one thread, apart from the egress pool,
  // so that a slow load never delays subscribers.
  auto component_admin = std::make_unique<WorkerPool>(1);
  auto component_service = MakeComponentService(*components, *component_admin, auth);
  // Adding an aggregation loads a module and resetting one drops its state: a thread of its own.
  auto aggregation_admin = std::make_unique<WorkerPool>(1);
  auto aggregation_service = MakeAggregationService(*aggregations, *aggregation_admin, auth);
  auto query_service = MakeQueryService(*aggregations, auth);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(
      options.listen, tls ? tls->GrpcCredentials() : grpc::InsecureServerCredentials(), &port);
  // Program components reach a server with TLS or authentication over a unix socket, whose
  // calls are the server's own (auth.h).
  std::string program_socket;
  if (tls || auth.enabled()) {
    ASSIGN_OR_RETURN(program_socket, ProgramSocketPath(options.broker.data_dir));
    builder.AddListeningPort(StrCat("unix:", program_socket), grpc::InsecureServerCredentials());
  }
  // gRPC sets SO_REUSEPORT by default: a second server on the same port would then start and
  // share the connections with the first. A port in use must be an error.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  if (audit) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> audits;
    audits.push_back(MakeAuditInterceptor(*audit, auth));
    builder.experimental().SetInterceptorCreators(std::move(audits));
  }
  builder.RegisterService(ingest.get());
  builder.RegisterService(topics.get());
  builder.RegisterService(consume.get());
  builder.RegisterService(component_service.get());
  builder.RegisterService(aggregation_service.get());
  builder.RegisterService(query_service.get());
  // Dead subscribers (a crashed host, a cut network) are noticed by keepalive pings, which end
  // their streams and so their group membership.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, options.keepalive_ms);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, options.keepalive_ms);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // A client cannot open streams without bound on one connection (per principal, --quota-streams
  // bounds them over all its connections).
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_streams_per_connection);
  // Room for a full batch plus protobuf framing, and for a component's module with its
  // configuration; larger messages get RESOURCE_EXHAUSTED.
  const uint64_t max_message =
      std::max<uint64_t>(options.broker.max_batch_bytes + (options.broker.max_batch_events * 64),
                         kMaxModuleMessageBytes) +
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
                   HttpServer::Start(
                       options.http,
                       [&registry, &b] {
                         b.RefreshMetrics();  // gauges are set at scrape time
                         return prometheus::TextSerializer().Serialize(registry.Collect());
                       },
                       [&b] { return b.Health(); },
                       *aggregations, tls.get(), &auth, options.metrics_auth == "tokens",
                       audit.get()));

  const std::string grpc_address =
      StrCat(options.listen.substr(0, options.listen.rfind(':')), ":", port);
  // Program components connect over loopback when the server listens on every address, and
  // over the unix socket when it speaks TLS or checks tokens.
  std::string program_address =
      program_socket.empty() ? grpc_address : StrCat("unix:", program_socket);
  for (std::string_view any : {"0.0.0.0:", "[::]:"}) {
    if (program_address.starts_with(any)) {
      program_address = StrCat("127.0.0.1:", program_address.substr(any.size()));
    }
  }
  std::unique_ptr<KafkaServer> kafka;
  if (!options.kafka.empty()) {
    KafkaOptions kafka_options;
    kafka_options.listen = options.kafka;
    kafka_options.max_request_bytes = max_message;
    kafka_options.max_event_bytes = options.broker.max_event_bytes;
    kafka_options.auto_create_topics = options.broker.auto_create_topics;
    ASSIGN_OR_RETURN(kafka, KafkaServer::Start(kafka_options, b, *egress, registry));
    spdlog::info("serving Kafka on {}", kafka->address());
  }
  components->StartPrograms(program_address);
  const std::string kafka_ready = kafka ? StrCat(" kafka=", kafka->address()) : std::string();
  std::printf("nodata ready grpc=%s http=%s%s\n", grpc_address.c_str(), http->address().c_str(),
              kafka_ready.c_str());
  std::fflush(stdout);
  spdlog::info("serving gRPC on {} and HTTP on {}", grpc_address, http->address());

  int sig = 0;
  while (sigwait(&stop_signals, &sig) == 0 && sig == SIGHUP) {
    if (!tls) {
      spdlog::info("SIGHUP: no TLS files to reload");
      continue;
    }
    if (absl::Status reloaded = tls->Reload(); !reloaded.ok()) {
      tls_reloads.Add({{"result", "error"}}).Increment();
      spdlog::error("SIGHUP: keeping the current TLS certificate: {}", ToStd(reloaded.message()));
      continue;
    }
    tls_reloads.Add({{"result", "ok"}}).Increment();
    tls_expiry.Add({}).Set(static_cast<double>(tls->NotAfterSeconds()));
    spdlog::info("SIGHUP: TLS files reloaded: {}", tls->Describe());
  }
  spdlog::info("signal {}: shutting down", sig);
  // Publishes waiting for a topic's dedupe state to be restored are answered, not held.
  b.BeginShutdown();
  // Programs stop first, while the server still answers them: a sink commits what it wrote.
  components->StopPrograms();
  consume->StopAll();
  kafka.reset();  // answers still being made are dropped: producers retry
  // Calls still open after a second (publish streams a producer keeps open) are cancelled: a batch
  // already handed to the broker is still stored, and a producer that missed its ack retries with
  // the same ids, which dedupe.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server->Wait();
  // Runs the queued jobs (final commits) while the services and the broker are alive.
  egress.reset();
  consume.reset();
  component_admin.reset();
  component_service.reset();
  aggregation_admin.reset();
  aggregation_service.reset();
  query_service.reset();  // waits for the Watch streams' threads
  spdlog::debug("gRPC stopped");
  // The components' last batches are published and committed while the broker is alive.
  components.reset();
  spdlog::debug("components stopped");
  http.reset();  // ends the HTTP watches
  spdlog::debug("HTTP stopped");
  // The aggregations checkpoint their state while the broker is alive.
  aggregations.reset();
  spdlog::debug("aggregations stopped");
  broker->SyncAll();
  broker.reset();
  if (program_socket.starts_with("/tmp/nodata-")) {
    ::unlink(program_socket.c_str());
    ::rmdir(std::filesystem::path(program_socket).parent_path().c_str());
  }
  spdlog::info("stopped");
  return absl::OkStatus();
}

}  // namespace nodata::server
