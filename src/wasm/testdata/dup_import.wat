;; Imports the same host function twice (two import entries, one name).
(module
  (import "host" "add" (func $a (param i32 i32) (result i32)))
  (import "host" "add" (func $b (param i32 i32) (result i32)))
  (func (export "both") (param i32) (result i32)
    (i32.add (call $a (local.get 0) (i32.const 1)) (call $b (local.get 0) (i32.const 2)))))
