// hash.hpp: the core's nullable strings (Text, borrowed; NString, owned),
// its one string hash, and the one open-addressing index over hashed keys.
// Keys of the rollup aggregator, of the hour's callers and of the rate cells
// in shared memory are hashed and compared the same way.
#pragma once
#include "core_only.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgm {

// Text is a nullable string the caller owns while it is used.
struct Text {
    const char* p = nullptr;
    size_t n = 0;
    bool is_null() const { return p == nullptr; }
    std::string_view view() const { return {p, n}; }  // empty when NULL
};

// NString is an owned nullable string: a Text kept beyond its owner.
using NString = std::optional<std::string>;

inline NString owned(Text t) { return t.is_null() ? NString{} : NString{std::in_place, t.p, t.n}; }
inline Text text_of(const NString& s) { return s ? Text{s->data(), s->size()} : Text{}; }

// same says whether a Text holds the bytes of s (NULL only equals NULL).
inline bool same(Text t, Text s) {
    if (t.is_null() || s.is_null()) return t.is_null() && s.is_null();
    return s.n == t.n && (t.n == 0 || std::memcmp(s.p, t.p, t.n) == 0);
}
inline bool same(Text t, const std::string& s) { return same(t, Text{s.data(), s.size()}); }
inline bool same(Text t, const NString& s) { return s ? same(t, *s) : t.is_null(); }

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

// FlatIndex maps hashed keys to dense ids with open addressing: one probe
// into one array of (hash, id), where a node-based map costs a cache miss
// per step. The keys themselves live with the caller, who tells equality.
class FlatIndex {
  public:
    // find_or_add returns the id of the key with this hash for which eq(id)
    // holds, giving it next_id when there is none (and setting added).
    template <class Eq>
    uint32_t find_or_add(uint64_t hash, Eq eq, uint32_t next_id, bool& added) {
        if ((size_ + 1) * 2 > slots_.size()) grow();
        size_t mask = slots_.size() - 1;
        for (size_t i = hash & mask;; i = (i + 1) & mask) {
            Slot& s = slots_[i];
            if (s.id == kEmpty) {
                s.hash = hash;
                s.id = next_id;
                ++size_;
                added = true;
                return next_id;
            }
            if (s.hash == hash && eq(s.id)) {
                added = false;
                return s.id;
            }
        }
    }

  private:
    static constexpr uint32_t kEmpty = UINT32_MAX;
    struct Slot {
        uint64_t hash = 0;
        uint32_t id = kEmpty;
    };
    void grow() {
        std::vector<Slot> old = std::move(slots_);
        slots_.assign(old.empty() ? 1024 : old.size() * 2, Slot{});
        size_t mask = slots_.size() - 1;
        for (const Slot& s : old) {
            if (s.id == kEmpty) continue;
            size_t i = s.hash & mask;
            while (slots_[i].id != kEmpty)
                i = (i + 1) & mask;
            slots_[i] = s;
        }
    }
    std::vector<Slot> slots_;
    size_t size_ = 0;
};

}  // namespace pgm
