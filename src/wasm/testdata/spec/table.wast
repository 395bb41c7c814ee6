;; call_indirect through a funcref table filled by active elem segments:
;; dispatch, structural signature matching, and the three ways it traps.

(module
  (type $i2i (func (param i32) (result i32)))
  (type $i2i_again (func (param i32) (result i32)))  ;; structurally equal to $i2i
  (type $v2i (func (result i32)))
  (type $ii2i (func (param i32 i32) (result i32)))
  (type $l2l (func (param i64) (result i64)))
  (type $d2d (func (param f64) (result f64)))

  (table 10 funcref)
  ;; slots: 0 double, 1 square, 2 seven, 3 add, 4 empty, 5 negate, 6 fact64, 7 half, 8 fact_ind, 9 empty
  (elem (i32.const 0) $double $square $seven $add)
  (elem (i32.const 5) $negate $fact64 $half $fact_ind)

  (func $double (type $i2i) (i32.mul (local.get 0) (i32.const 2)))
  (func $square (type $i2i) (i32.mul (local.get 0) (local.get 0)))
  (func $seven (type $v2i) (i32.const 7))
  (func $add (type $ii2i) (i32.add (local.get 0) (local.get 1)))
  (func $negate (type $i2i_again) (i32.sub (i32.const 0) (local.get 0)))
  (func $fact64 (type $l2l)
    (if (result i64) (i64.le_u (local.get 0) (i64.const 1))
      (then (i64.const 1))
      (else (i64.mul (local.get 0)
        (call_indirect (type $l2l) (i64.sub (local.get 0) (i64.const 1)) (i32.const 6))))))
  (func $half (type $d2d) (f64.mul (local.get 0) (f64.const 0.5)))
  ;; recursion where every step goes through the table
  (func $fact_ind (type $i2i)
    (if (result i32) (i32.eqz (local.get 0))
      (then (i32.const 1))
      (else (i32.mul (local.get 0)
        (call_indirect (type $i2i) (i32.sub (local.get 0) (i32.const 1)) (i32.const 8))))))

  (func (export "call_i2i") (param $slot i32) (param $x i32) (result i32)
    (call_indirect (type $i2i) (local.get $x) (local.get $slot)))
  (func (export "call_i2i_again") (param $slot i32) (param $x i32) (result i32)
    (call_indirect (type $i2i_again) (local.get $x) (local.get $slot)))
  (func (export "call_v2i") (param $slot i32) (result i32)
    (call_indirect (type $v2i) (local.get $slot)))
  (func (export "call_ii2i") (param $slot i32) (param $a i32) (param $b i32) (result i32)
    (call_indirect (type $ii2i) (local.get $a) (local.get $b) (local.get $slot)))
  (func (export "call_l2l") (param $slot i32) (param $x i64) (result i64)
    (call_indirect (type $l2l) (local.get $x) (local.get $slot)))
  (func (export "call_d2d") (param $slot i32) (param $x f64) (result f64)
    (call_indirect (type $d2d) (local.get $x) (local.get $slot)))
  ;; applies slot $f to $x, $n times
  (func (export "iterate") (param $f i32) (param $n i32) (param $x i32) (result i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $x (call_indirect (type $i2i) (local.get $x) (local.get $f)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $x))
)

;; successful dispatch
(assert_return (invoke "call_i2i" (i32.const 0) (i32.const 21)) (i32.const 42))
(assert_return (invoke "call_i2i" (i32.const 1) (i32.const -9)) (i32.const 81))
(assert_return (invoke "call_v2i" (i32.const 2)) (i32.const 7))
(assert_return (invoke "call_ii2i" (i32.const 3) (i32.const 40) (i32.const 2)) (i32.const 42))
(assert_return (invoke "call_i2i" (i32.const 5) (i32.const 5)) (i32.const -5))
(assert_return (invoke "call_l2l" (i32.const 6) (i64.const 20)) (i64.const 2432902008176640000))
(assert_return (invoke "call_d2d" (i32.const 7) (f64.const 3)) (f64.const 1.5))
(assert_return (invoke "call_i2i" (i32.const 8) (i32.const 10)) (i32.const 3628800))
(assert_return (invoke "iterate" (i32.const 0) (i32.const 10) (i32.const 1)) (i32.const 1024))
(assert_return (invoke "iterate" (i32.const 1) (i32.const 3) (i32.const 3)) (i32.const 6561))
(assert_return (invoke "iterate" (i32.const 5) (i32.const 0) (i32.const 9)) (i32.const 9))
;; signatures are compared structurally, not by type index
(assert_return (invoke "call_i2i_again" (i32.const 0) (i32.const 4)) (i32.const 8))
(assert_return (invoke "call_i2i" (i32.const 5) (i32.const 0x80000000)) (i32.const 0x80000000))
(assert_return (invoke "call_i2i_again" (i32.const 5) (i32.const 1)) (i32.const -1))

;; signature mismatch
(assert_trap (invoke "call_i2i" (i32.const 2) (i32.const 0)) "indirect call type mismatch")
(assert_trap (invoke "call_i2i" (i32.const 3) (i32.const 0)) "indirect call type mismatch")
(assert_trap (invoke "call_v2i" (i32.const 0)) "indirect call type mismatch")
(assert_trap (invoke "call_ii2i" (i32.const 1) (i32.const 1) (i32.const 1)) "indirect call type mismatch")
(assert_trap (invoke "call_l2l" (i32.const 7) (i64.const 1)) "indirect call type mismatch")
(assert_trap (invoke "call_d2d" (i32.const 6) (f64.const 1)) "indirect call type mismatch")
(assert_trap (invoke "iterate" (i32.const 2) (i32.const 1) (i32.const 0)) "indirect call type mismatch")
;; the mismatch check happens per call, so zero iterations does not trap
(assert_return (invoke "iterate" (i32.const 2) (i32.const 0) (i32.const 0)) (i32.const 0))

;; uninitialized slots
(assert_trap (invoke "call_i2i" (i32.const 4) (i32.const 0)) "uninitialized element")
(assert_trap (invoke "call_v2i" (i32.const 9)) "uninitialized element")
(assert_trap (invoke "call_l2l" (i32.const 4) (i64.const 0)) "uninitialized element")

;; index past the end of the table (the index is unsigned)
(assert_trap (invoke "call_i2i" (i32.const 10) (i32.const 0)) "undefined element")
(assert_trap (invoke "call_v2i" (i32.const 11)) "undefined element")
(assert_trap (invoke "call_v2i" (i32.const -1)) "undefined element")
(assert_trap (invoke "call_i2i" (i32.const 0x80000000) (i32.const 0)) "undefined element")
(assert_trap (invoke "call_ii2i" (i32.const 0x7fffffff) (i32.const 0) (i32.const 0)) "undefined element")

;; Overlapping segments: the later one wins. The table has an explicit maximum.
(module
  (type $v2i (func (result i32)))
  (table 3 3 funcref)
  (elem (i32.const 0) $one $two $three)
  (elem (i32.const 1) $twenty)
  (func $one (type $v2i) (i32.const 1))
  (func $two (type $v2i) (i32.const 2))
  (func $three (type $v2i) (i32.const 3))
  (func $twenty (type $v2i) (i32.const 20))
  (func (export "call") (param i32) (result i32) (call_indirect (type $v2i) (local.get 0)))
  (func (export "sum") (result i32)
    (i32.add (call_indirect (type $v2i) (i32.const 0))
      (i32.add (call_indirect (type $v2i) (i32.const 1))
               (call_indirect (type $v2i) (i32.const 2)))))
)
(assert_return (invoke "call" (i32.const 0)) (i32.const 1))
(assert_return (invoke "call" (i32.const 1)) (i32.const 20))
(assert_return (invoke "call" (i32.const 2)) (i32.const 3))
(assert_return (invoke "sum") (i32.const 24))
(assert_trap (invoke "call" (i32.const 3)) "undefined element")

;; A function can appear in several slots; an empty table traps on every index.
(module
  (type $i2i (func (param i32) (result i32)))
  (table 4 funcref)
  (elem (i32.const 1) $inc $inc $inc)
  (func $inc (type $i2i) (i32.add (local.get 0) (i32.const 1)))
  (func (export "chain") (param i32) (result i32)
    (call_indirect (type $i2i)
      (call_indirect (type $i2i)
        (call_indirect (type $i2i) (local.get 0) (i32.const 1))
        (i32.const 2))
      (i32.const 3)))
  (func (export "call") (param i32 i32) (result i32)
    (call_indirect (type $i2i) (local.get 1) (local.get 0)))
)
(assert_return (invoke "chain" (i32.const 39)) (i32.const 42))
(assert_return (invoke "call" (i32.const 3) (i32.const -1)) (i32.const 0))
(assert_trap (invoke "call" (i32.const 0) (i32.const 0)) "uninitialized element")
(assert_trap (invoke "call" (i32.const 4) (i32.const 0)) "undefined element")

(module
  (type $v2i (func (result i32)))
  (table 0 funcref)
  (func (export "call") (param i32) (result i32) (call_indirect (type $v2i) (local.get 0)))
)
(assert_trap (invoke "call" (i32.const 0)) "undefined element")
(assert_trap (invoke "call" (i32.const 1)) "undefined element")
