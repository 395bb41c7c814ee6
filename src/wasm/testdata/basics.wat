;; The module the runtime tests run on both tiers: host calls, memory, globals, loops, recursion.
(module
  (import "host" "add" (func $host_add (param i32 i32) (result i32)))
  (import "host" "fail" (func $host_fail (param i32)))
  (import "host" "mix" (func $host_mix (param i64 f32 f64) (result f64)))
  (memory (export "memory") 1 4)
  (global $counter (mut i32) (i32.const 0))
  (global $wide (mut i64) (i64.const 0))
  (data (i32.const 16) "nodata")

  (func (export "add") (param i32 i32) (result i32)
    local.get 0 local.get 1 i32.add)
  (func (export "call_host") (param i32 i32) (result i32)
    local.get 0 local.get 1 call $host_add)
  (func (export "call_fail") (param i32)
    local.get 0 call $host_fail)
  (func (export "call_mix") (param i64 f32 f64) (result f64)
    local.get 0 local.get 1 local.get 2 call $host_mix)
  (func (export "bump") (result i32)
    global.get $counter i32.const 1 i32.add global.set $counter
    global.get $wide i64.const 1000000000000 i64.add global.set $wide
    global.get $counter)
  (func (export "wide") (result i64) global.get $wide)
  ;; Loops n times; fuel: 1 (entry) + n + 1 (loop headers).
  (func (export "spin") (param $n i32) (result i32) (local $i i32)
    (block $done
      (loop $top
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $top)))
    local.get $i)
  (func (export "forever") (loop $l (br $l)))
  ;; Runs until stopped, with work no compiler can fold away (a xorshift stored to memory).
  (func (export "busy") (local $x i32)
    (local.set $x (i32.const 1))
    (loop $l
      (local.set $x (i32.xor (local.get $x) (i32.shl (local.get $x) (i32.const 13))))
      (local.set $x (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 17))))
      (local.set $x (i32.xor (local.get $x) (i32.shl (local.get $x) (i32.const 5))))
      (i32.store (i32.const 0) (local.get $x))
      (br $l)))
  ;; Calls the host in a loop: a deadline can fall inside the host function.
  (func (export "busy_host") (local $x i32)
    (loop $l
      (local.set $x (call $host_add (local.get $x) (i32.const 1)))
      (br $l)))
  ;; Depth n recursion; `return` from inside nested blocks.
  (func $rec (export "recurse") (param i32) (result i32)
    (block
      (block
        (br_if 1 (local.get 0))
        (return (i32.const 0))))
    (i32.add (call $rec (i32.sub (local.get 0) (i32.const 1))) (i32.const 1)))
  (func $endless (export "endless") (param i32) (result i32)
    (i32.add (call $endless (local.get 0)) (i32.const 1)))
  ;; Endless recursion that calls the host at every level.
  (func $endless_host (export "endless_host") (param i32) (result i32)
    (drop (call $host_add (local.get 0) (i32.const 1)))
    (i32.add (call $endless_host (local.get 0)) (i32.const 1)))
  (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
  (func (export "pages") (result i32) memory.size)
  (func (export "load") (param i32) (result i32) local.get 0 i32.load)
  (func (export "store") (param i32 i32) local.get 0 local.get 1 i32.store)
  (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
  ;; Sums n bytes from p.
  (func (export "sum_bytes") (param $p i32) (param $n i32) (result i64) (local $s i64)
    (block $done
      (loop $top
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $s (i64.add (local.get $s) (i64.load8_u (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $top)))
    local.get $s)
)
