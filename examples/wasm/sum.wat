;; A loop over linear memory: fills n i32s with 1..n, then sums them (i64).
;; `nodata wasm run examples/wasm/sum.wat --invoke sum_to 1000` prints 500500.
(module
  (memory (export "memory") 1 16)
  (func (export "sum_to") (param $n i32) (result i64)
    (local $i i32) (local $total i64)
    (if (i32.gt_u (local.get $n) (i32.const 16384)) (then (unreachable)))
    (block $filled
      (loop $fill
        (br_if $filled (i32.ge_u (local.get $i) (local.get $n)))
        (i32.store (i32.shl (local.get $i) (i32.const 2)) (i32.add (local.get $i) (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $fill)))
    (local.set $i (i32.const 0))
    (block $done
      (loop $add
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $total
          (i64.add (local.get $total)
                   (i64.extend_i32_u (i32.load (i32.shl (local.get $i) (i32.const 2))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $add)))
    (local.get $total)))
