// The pool of threads that run fdatasync jobs, so that the partitions touched by a batch are
// synced in parallel and publishers never block a gRPC thread on the disk. It is the common
// worker pool.
#pragma once

#include "common/worker_pool.h"

namespace nodata::log {

using Syncer = WorkerPool;

}  // namespace nodata::log
