;; The no-op component: reads each batch and emits nothing. What it costs is the host's part:
;; the subscription, the batch encoding, the call, the commit.
(module
  (import "nodata" "batch_read" (func $batch_read (param i32 i32) (result i32)))
  (memory (export "memory") 512)
  (func (export "nodata_component_v1"))
  (func (export "nd_process") (param $n i32) (result i32)
    (drop (call $batch_read (i32.const 0) (local.get $n)))
    (i32.const 0)))
