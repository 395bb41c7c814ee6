;; A start function that traps: instantiation fails on both tiers.
(module (memory 1) (func $boom (drop (i32.load (i32.const 70000)))) (start $boom))
