;; Asks for 1000 initial pages (62.5 MiB).
(module (memory (export "memory") 1000))
