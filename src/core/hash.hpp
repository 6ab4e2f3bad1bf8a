// hash.hpp: the core's one string hash. Keys of the rollup aggregator and
// of the rate cells in shared memory are hashed the same way.
#pragma once
#include "core_only.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace pgm {

// Text is a nullable string the caller owns while it is used.
struct Text {
    const char* p = nullptr;
    size_t n = 0;
    bool is_null() const { return p == nullptr; }
};

// mix is a 64-bit finalizer (every input bit reaches every output bit).
inline uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

// hash_text hashes a nullable string eight bytes at a time; seed chains
// the fields of one key (NULL and "" hash apart).
inline uint64_t hash_text(Text t, uint64_t seed) {
    if (t.is_null()) return mix(seed ^ UINT64_C(0x6A09E667F3BCC909));
    uint64_t h = seed ^ (t.n * UINT64_C(0x9E3779B97F4A7C15));
    size_t i = 0;
    for (; i + 8 <= t.n; i += 8) {
        uint64_t w;
        std::memcpy(&w, t.p + i, 8);
        h = (h ^ w) * UINT64_C(0xBF58476D1CE4E5B9);
        h ^= h >> 29;
    }
    uint64_t w = 0;
    std::memcpy(&w, t.p + i, t.n - i);
    h = (h ^ w) * UINT64_C(0x94D049BB133111EB);
    return mix(h);
}

}  // namespace pgm
