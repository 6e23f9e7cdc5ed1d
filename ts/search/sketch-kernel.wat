;; The binary sketch's scan kernels (WebAssembly with 128-bit SIMD), compiled to
;; lib/search/sketch-kernel.wasm by scripts/build-wasm.mjs.  The memory is imported and shared: the
;; store's worker and a scan helper thread (sketch-kernel.ts) each run scan() over half of the codes;
;; sketch.ts lays the memory out and grows it.
;;
;; A code is `blocks` × 16 bytes of sign bits; the Hamming distance between two codes is the number
;; of bits that differ.  Kinds are one byte per item (an index into MEDIA_KINDS); `mask` has bit k set
;; for each wanted kind.
(module
  (import "env" "mem" (memory 1 65536 shared))

  ;; scan(codes, n, blocks, q, kinds, mask, dist, hist):
  ;;   for each item i < n of a wanted kind: dist[i] (u16) = popcount(code_i xor q), hist[dist[i]] += 1;
  ;;   items of other kinds get dist[i] = 0xffff and are not counted.
  (func (export "scan")
    (param $codes i32) (param $n i32) (param $blocks i32) (param $q i32)
    (param $kinds i32) (param $mask i32) (param $dist i32) (param $hist i32)
    (local $i i32) (local $b i32) (local $group i32) (local $d i32) (local $qp i32)
    (local $acc8 v128) (local $acc32 v128)
    (block $done
      (loop $item
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (if (i32.and (i32.shr_u (local.get $mask) (i32.load8_u (i32.add (local.get $kinds) (local.get $i)))) (i32.const 1))
          (then
            (local.set $acc32 (v128.const i32x4 0 0 0 0))
            (local.set $qp (local.get $q))
            (local.set $b (local.get $blocks))
            ;; 1,024-bit codes (ImageBind-Huge) unrolled: 8 blocks, byte counts ≤ 64.
            (if (i32.eq (local.get $blocks) (i32.const 8))
              (then
                (local.set $acc8 (i8x16.add
                  (i8x16.add
                    (i8x16.add
                      (i8x16.popcnt (v128.xor (v128.load offset=0 (local.get $codes)) (v128.load offset=0 (local.get $q))))
                      (i8x16.popcnt (v128.xor (v128.load offset=16 (local.get $codes)) (v128.load offset=16 (local.get $q)))))
                    (i8x16.add
                      (i8x16.popcnt (v128.xor (v128.load offset=32 (local.get $codes)) (v128.load offset=32 (local.get $q))))
                      (i8x16.popcnt (v128.xor (v128.load offset=48 (local.get $codes)) (v128.load offset=48 (local.get $q))))))
                  (i8x16.add
                    (i8x16.add
                      (i8x16.popcnt (v128.xor (v128.load offset=64 (local.get $codes)) (v128.load offset=64 (local.get $q))))
                      (i8x16.popcnt (v128.xor (v128.load offset=80 (local.get $codes)) (v128.load offset=80 (local.get $q)))))
                    (i8x16.add
                      (i8x16.popcnt (v128.xor (v128.load offset=96 (local.get $codes)) (v128.load offset=96 (local.get $q))))
                      (i8x16.popcnt (v128.xor (v128.load offset=112 (local.get $codes)) (v128.load offset=112 (local.get $q))))))))
                (local.set $acc32 (i32x4.extadd_pairwise_i16x8_u (i16x8.extadd_pairwise_i8x16_u (local.get $acc8))))
                (local.set $codes (i32.add (local.get $codes) (i32.const 128)))
                (local.set $b (i32.const 0))))
            ;; Any other length: per-byte counts reach at most 8 per block, so sum up to 16 blocks in
            ;; bytes (≤ 128), then widen.
            (block $general
              (br_if $general (i32.eqz (local.get $b)))
            (loop $groups
              (local.set $group (select (i32.const 16) (local.get $b) (i32.gt_u (local.get $b) (i32.const 16))))
              (local.set $b (i32.sub (local.get $b) (local.get $group)))
              (local.set $acc8 (v128.const i32x4 0 0 0 0))
              (loop $block
                (local.set $acc8 (i8x16.add (local.get $acc8)
                  (i8x16.popcnt (v128.xor (v128.load (local.get $codes)) (v128.load (local.get $qp))))))
                (local.set $codes (i32.add (local.get $codes) (i32.const 16)))
                (local.set $qp (i32.add (local.get $qp) (i32.const 16)))
                (local.set $group (i32.sub (local.get $group) (i32.const 1)))
                (br_if $block (local.get $group)))
              (local.set $acc32 (i32x4.add (local.get $acc32)
                (i32x4.extadd_pairwise_i16x8_u (i16x8.extadd_pairwise_i8x16_u (local.get $acc8)))))
              (br_if $groups (local.get $b))))
            (local.set $d (i32.add
              (i32.add (i32x4.extract_lane 0 (local.get $acc32)) (i32x4.extract_lane 1 (local.get $acc32)))
              (i32.add (i32x4.extract_lane 2 (local.get $acc32)) (i32x4.extract_lane 3 (local.get $acc32)))))
            (i32.store16 (local.get $dist) (local.get $d))
            (local.set $d (i32.add (local.get $hist) (i32.shl (local.get $d) (i32.const 2))))
            (i32.store (local.get $d) (i32.add (i32.load (local.get $d)) (i32.const 1))))
          (else
            (i32.store16 (local.get $dist) (i32.const 0xffff))
            (local.set $codes (i32.add (local.get $codes) (i32.shl (local.get $blocks) (i32.const 4))))))
        (local.set $dist (i32.add (local.get $dist) (i32.const 2)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $item))))

  ;; collect(dist, n, lo, hi, out, cap) -> count: the indices i of items with lo < dist[i] <= hi, in
  ;; order, into out (u32), at most cap of them.
  (func (export "collect")
    (param $dist i32) (param $n i32) (param $lo i32) (param $hi i32) (param $out i32) (param $cap i32)
    (result i32)
    (local $i i32) (local $d i32) (local $count i32)
    (block $done
      (loop $item
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (br_if $done (i32.ge_u (local.get $count) (local.get $cap)))
        (local.set $d (i32.load16_u (i32.add (local.get $dist) (i32.shl (local.get $i) (i32.const 1)))))
        (if (i32.and (i32.gt_s (local.get $d) (local.get $lo)) (i32.le_s (local.get $d) (local.get $hi)))
          (then
            (i32.store (i32.add (local.get $out) (i32.shl (local.get $count) (i32.const 2))) (local.get $i))
            (local.set $count (i32.add (local.get $count) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $item)))
    (local.get $count))
)
