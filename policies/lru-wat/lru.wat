;; LRU eviction for the kplugfs plugin ABI v1, written by hand in WebAssembly
;; text: no SDK, no compiler, no allocator. It shows what the ABI asks of any
;; language: export `memory`, `kplug_abi_version` and a role's hooks with the
;; exact scalar signatures; import only from module "kplug".
;;
;; Data, laid out in linear memory by kplug_init (which grows the memory):
;;   table  at $T0: $mask+1 slots of i32, 0 = empty, else node index + 1;
;;          open addressing, linear probing, backward-shift deletion.
;;   nodes  after it: 16 bytes each {key: i64, prev: i32, next: i32},
;;          a doubly linked list, head = most recently used, tail = victim.
;;          Freed nodes form a free list through `next`.
;; Capacity is limited to 2^20 blocks (24 MiB of tables).
(module
  (import "kplug" "capacity" (func $host_capacity (result i64)))
  (memory (export "memory") 1)

  (global $T0 i32 (i32.const 65536))
  (global $N0 (mut i32) (i32.const 0))     ;; base of the nodes
  (global $mask (mut i32) (i32.const 0))   ;; table slots - 1
  (global $head (mut i32) (i32.const -1))
  (global $tail (mut i32) (i32.const -1))
  (global $free (mut i32) (i32.const -1))  ;; free-list head
  (global $unused (mut i32) (i32.const 0)) ;; next never-used node

  (func (export "kplug_abi_version") (result i32) (i32.const 0x10000))

  ;; Sizes the tables for `cap` blocks; refuses a capacity the host does
  ;; not report (code 2) or one over 2^20 (code 1).
  (func (export "kplug_init") (param $cap i64) (result i32)
    (local $slots i32) (local $bytes i32)
    (if (i64.ne (local.get $cap) (call $host_capacity)) (then (return (i32.const 2))))
    (if (i64.gt_u (local.get $cap) (i64.const 1048576)) (then (return (i32.const 1))))
    ;; slots = next power of two >= 2 * cap (at least 16)
    (local.set $slots (i32.const 16))
    (block $done (loop $grow
      (br_if $done (i64.ge_u (i64.extend_i32_u (local.get $slots)) (i64.mul (local.get $cap) (i64.const 2))))
      (local.set $slots (i32.shl (local.get $slots) (i32.const 1)))
      (br $grow)))
    (global.set $mask (i32.sub (local.get $slots) (i32.const 1)))
    (global.set $N0 (i32.add (global.get $T0) (i32.shl (local.get $slots) (i32.const 2))))
    (local.set $bytes (i32.add (global.get $N0) (i32.shl (i32.wrap_i64 (local.get $cap)) (i32.const 4))))
    ;; grow to cover $bytes (one page is already there)
    (if (i32.lt_s
          (memory.grow (i32.sub (i32.shr_u (i32.add (local.get $bytes) (i32.const 65535)) (i32.const 16)) (memory.size)))
          (i32.const 0))
      (then (return (i32.const 1))))
    (i32.const 0))

  (func $hash (param $key i64) (result i32)
    (i32.and
      (i32.wrap_i64 (i64.shr_u (i64.mul (local.get $key) (i64.const 0x9E3779B97F4A7C15)) (i64.const 32)))
      (global.get $mask)))

  (func $slot_addr (param $s i32) (result i32)
    (i32.add (global.get $T0) (i32.shl (local.get $s) (i32.const 2))))
  (func $node_addr (param $n i32) (result i32)
    (i32.add (global.get $N0) (i32.shl (local.get $n) (i32.const 4))))
  (func $key_of (param $n i32) (result i64)
    (i64.load (call $node_addr (local.get $n))))

  ;; Slot holding `key`, or -1.
  (func $find (param $key i64) (result i32)
    (local $s i32) (local $e i32)
    (local.set $s (call $hash (local.get $key)))
    (loop $probe
      (local.set $e (i32.load (call $slot_addr (local.get $s))))
      (if (i32.eqz (local.get $e)) (then (return (i32.const -1))))
      (if (i64.eq (call $key_of (i32.sub (local.get $e) (i32.const 1))) (local.get $key))
        (then (return (local.get $s))))
      (local.set $s (i32.and (i32.add (local.get $s) (i32.const 1)) (global.get $mask)))
      (br $probe))
    (unreachable))

  (func $table_insert (param $key i64) (param $n i32)
    (local $s i32)
    (local.set $s (call $hash (local.get $key)))
    (block $found (loop $probe
      (br_if $found (i32.eqz (i32.load (call $slot_addr (local.get $s)))))
      (local.set $s (i32.and (i32.add (local.get $s) (i32.const 1)) (global.get $mask)))
      (br $probe)))
    (i32.store (call $slot_addr (local.get $s)) (i32.add (local.get $n) (i32.const 1))))

  ;; Empties slot $hole and shifts back later entries of its probe run.
  (func $table_remove (param $hole i32)
    (local $i i32) (local $e i32) (local $home i32)
    (i32.store (call $slot_addr (local.get $hole)) (i32.const 0))
    (local.set $i (i32.and (i32.add (local.get $hole) (i32.const 1)) (global.get $mask)))
    (block $end (loop $shift
      (local.set $e (i32.load (call $slot_addr (local.get $i))))
      (br_if $end (i32.eqz (local.get $e)))
      (local.set $home (call $hash (call $key_of (i32.sub (local.get $e) (i32.const 1)))))
      (if (i32.ge_u
            (i32.and (i32.sub (local.get $i) (local.get $home)) (global.get $mask))
            (i32.and (i32.sub (local.get $i) (local.get $hole)) (global.get $mask)))
        (then
          (i32.store (call $slot_addr (local.get $hole)) (local.get $e))
          (i32.store (call $slot_addr (local.get $i)) (i32.const 0))
          (local.set $hole (local.get $i))))
      (local.set $i (i32.and (i32.add (local.get $i) (i32.const 1)) (global.get $mask)))
      (br $shift))))

  (func $unlink (param $n i32)
    (local $a i32) (local $prev i32) (local $next i32)
    (local.set $a (call $node_addr (local.get $n)))
    (local.set $prev (i32.load offset=8 (local.get $a)))
    (local.set $next (i32.load offset=12 (local.get $a)))
    (if (i32.eq (local.get $prev) (i32.const -1))
      (then (global.set $head (local.get $next)))
      (else (i32.store offset=12 (call $node_addr (local.get $prev)) (local.get $next))))
    (if (i32.eq (local.get $next) (i32.const -1))
      (then (global.set $tail (local.get $prev)))
      (else (i32.store offset=8 (call $node_addr (local.get $next)) (local.get $prev)))))

  (func $push_front (param $n i32)
    (local $a i32)
    (local.set $a (call $node_addr (local.get $n)))
    (i32.store offset=8 (local.get $a) (i32.const -1))
    (i32.store offset=12 (local.get $a) (global.get $head))
    (if (i32.eq (global.get $head) (i32.const -1))
      (then (global.set $tail (local.get $n)))
      (else (i32.store offset=8 (call $node_addr (global.get $head)) (local.get $n))))
    (global.set $head (local.get $n)))

  (func $alloc_node (result i32)
    (local $n i32)
    (if (i32.ne (global.get $free) (i32.const -1))
      (then
        (local.set $n (global.get $free))
        (global.set $free (i32.load offset=12 (call $node_addr (local.get $n))))
        (return (local.get $n))))
    (local.set $n (global.get $unused))
    (global.set $unused (i32.add (local.get $n) (i32.const 1)))
    (local.get $n))

  (func $free_node (param $n i32)
    (i32.store offset=12 (call $node_addr (local.get $n)) (global.get $free))
    (global.set $free (local.get $n)))

  (func (export "kplug_evict_insert") (param $key i64)
    (local $s i32) (local $n i32)
    (local.set $s (call $find (local.get $key)))
    (if (i32.ge_s (local.get $s) (i32.const 0))
      (then
        (local.set $n (i32.sub (i32.load (call $slot_addr (local.get $s))) (i32.const 1)))
        (call $unlink (local.get $n))
        (call $push_front (local.get $n))
        (return)))
    (local.set $n (call $alloc_node))
    (i64.store (call $node_addr (local.get $n)) (local.get $key))
    (call $table_insert (local.get $key) (local.get $n))
    (call $push_front (local.get $n)))

  (func (export "kplug_evict_access") (param $key i64)
    (local $s i32) (local $n i32)
    (local.set $s (call $find (local.get $key)))
    (if (i32.lt_s (local.get $s) (i32.const 0)) (then (return)))
    (local.set $n (i32.sub (i32.load (call $slot_addr (local.get $s))) (i32.const 1)))
    (if (i32.eq (local.get $n) (global.get $head)) (then (return)))
    (call $unlink (local.get $n))
    (call $push_front (local.get $n)))

  (func (export "kplug_evict_remove") (param $key i64)
    (local $s i32) (local $n i32)
    (local.set $s (call $find (local.get $key)))
    (if (i32.lt_s (local.get $s) (i32.const 0)) (then (return)))
    (local.set $n (i32.sub (i32.load (call $slot_addr (local.get $s))) (i32.const 1)))
    (call $table_remove (local.get $s))
    (call $unlink (local.get $n))
    (call $free_node (local.get $n)))

  ;; The least recently used key, forgotten; -1 if empty (never resident:
  ;; the host reports it).
  (func (export "kplug_evict_victim") (result i64)
    (local $n i32) (local $key i64)
    (local.set $n (global.get $tail))
    (if (i32.eq (local.get $n) (i32.const -1)) (then (return (i64.const -1))))
    (local.set $key (call $key_of (local.get $n)))
    (call $table_remove (call $find (local.get $key)))
    (call $unlink (local.get $n))
    (call $free_node (local.get $n))
    (local.get $key))
)
