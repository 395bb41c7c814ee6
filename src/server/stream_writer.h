// The gRPC side of a subscription's sink: writes to and finishes a server stream for as long as
// gRPC has not finished with it.
#pragma once

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace nodata::server {

// Safe for concurrent use. A pool job may still be delivering when gRPC is done with the call
// (OnDone, then Detach): what comes after goes nowhere.
template <typename Message>
class StreamWriter {
 public:
  explicit StreamWriter(grpc::ServerWriteReactor<Message>* reactor) : reactor_(reactor) {}

  // `message` must stay valid until the reactor's OnWriteDone.
  void Write(const Message* message) {
    grpc::ServerWriteReactor<Message>* r;
    {
      absl::MutexLock lock(&mu_);
      r = finished_ ? nullptr : reactor_;
    }
    if (r) r->StartWrite(message);
  }
  // Finishes the call once; later calls do nothing.
  void Finish(const grpc::Status& status) {
    grpc::ServerWriteReactor<Message>* r;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
      r = reactor_;
    }
    if (r) r->Finish(status);
  }
  void Detach() {
    absl::MutexLock lock(&mu_);
    reactor_ = nullptr;
  }

 private:
  absl::Mutex mu_;
  grpc::ServerWriteReactor<Message>* reactor_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace nodata::server
