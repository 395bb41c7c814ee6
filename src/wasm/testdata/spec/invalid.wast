;; Modules that must be rejected: well-formed but invalid (assert_invalid),
;; and binaries that cannot be decoded at all (assert_malformed).

;; A minimal valid module first, so a driver that rejects everything fails here.
(module (func (export "ok") (result i32) (i32.const 1)))
(assert_return (invoke "ok") (i32.const 1))

;; ---- validation errors -------------------------------------------------

(assert_invalid
  (module (func (result i32) (i32.add (i64.const 1) (i32.const 2))))
  "type mismatch")
(assert_invalid
  (module (func (result i64) (i32.const 0)))
  "type mismatch")
(assert_invalid
  (module (func (param f32) (result i32) (i32.eqz (local.get 0))))
  "type mismatch")
(assert_invalid
  (module (func (result i32) (nop)))
  "type mismatch")
(assert_invalid
  (module (func (i32.const 1)))
  "type mismatch")
(assert_invalid
  (module (func (result i32) (block (result i32) (i64.const 0))))
  "type mismatch")
(assert_invalid
  (module (func (result i32) (if (result i32) (i32.const 1) (then (i32.const 1)))))
  "type mismatch")
(assert_invalid
  (module (func (result i32) (select (i32.const 1) (i64.const 2) (i32.const 0))))
  "type mismatch")
(assert_invalid
  (module (func (param i32) (local.set 0 (f64.const 1))))
  "type mismatch")
(assert_invalid
  (module (func (result i32) (local.get 0)))
  "unknown local")
(assert_invalid
  (module (func (param i32) (local i64) (local.set 2 (i32.const 0))))
  "unknown local")
(assert_invalid
  (module (func (call 7)))
  "unknown function")
(assert_invalid
  (module (func $f) (start 3))
  "unknown function")
(assert_invalid
  (module (func (block (br 2))))
  "unknown label")
(assert_invalid
  (module (global i32 (i32.const 0)) (func (global.set 0 (i32.const 1))))
  "global is immutable")
(assert_invalid
  (module (func (result i32) (global.get 0)))
  "unknown global")
(assert_invalid
  (module (func (result i32) (i32.load (i32.const 0))))
  "unknown memory")
(assert_invalid
  (module (memory 1) (func (result i32) (i32.load align=8 (i32.const 0))))
  "alignment must not be larger than natural")
(assert_invalid
  (module (type (func)) (func (call_indirect (type 0) (i32.const 0))))
  "unknown table")
(assert_invalid
  (module (func $s (param i32)) (start $s))
  "start function")
(assert_invalid
  (module (func $a) (export "x" (func $a)) (export "x" (func $a)))
  "duplicate export name")
(assert_invalid
  (module (memory 2 1))
  "size minimum must not be greater than maximum")
(assert_invalid
  (module (memory 1) (data "x") (func (memory.init 1 (i32.const 0) (i32.const 0) (i32.const 0))))
  "unknown data segment")

;; ---- malformed binaries ------------------------------------------------

;; empty input and bad magic
(assert_malformed (module binary "") "unexpected end")
(assert_malformed (module binary "\00asn\01\00\00\00") "magic header not detected")
(assert_malformed (module binary "asm\00\01\00\00\00") "magic header not detected")
;; unsupported version
(assert_malformed (module binary "\00asm\02\00\00\00") "unknown binary version")
;; header cut short
(assert_malformed (module binary "\00asm\01\00") "unexpected end")
;; type section declares 5 bytes but only 3 follow
(assert_malformed (module binary "\00asm\01\00\00\00" "\01\05\01\60\00") "unexpected end")
;; type section declares 1 entry but the body stops after the form byte
(assert_malformed (module binary "\00asm\01\00\00\00" "\01\02\01\60") "unexpected end")
;; unknown section id
(assert_malformed (module binary "\00asm\01\00\00\00" "\0e\01\00") "malformed section id")
;; function section without a code section
(assert_malformed
  (module binary "\00asm\01\00\00\00"
    "\01\04\01\60\00\00"   ;; type section: one type, () -> ()
    "\03\02\01\00")        ;; function section: one function of type 0
  "function and code section have inconsistent lengths")
;; LEB128 section size that is longer than 5 bytes
(assert_malformed
  (module binary "\00asm\01\00\00\00" "\01\80\80\80\80\80\00")
  "integer representation too long")
;; code body whose end opcode is missing
(assert_malformed
  (module binary "\00asm\01\00\00\00"
    "\01\04\01\60\00\00"   ;; type section
    "\03\02\01\00"         ;; function section
    "\0a\04\01\02\00\01")  ;; code section: body of 2 bytes = 0 locals, nop (no end)
  "END opcode expected")
