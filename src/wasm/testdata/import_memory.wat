;; Imports its memory, which nodata refuses: a module's memory is its own.
(module (import "env" "memory" (memory 1)) (func (export "f") (result i32) (i32.load (i32.const 0))))
