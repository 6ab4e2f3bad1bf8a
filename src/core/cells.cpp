#include "cells.hpp"

#include <algorithm>
#include <new>

#include "error.hpp"

namespace pgm::limits {

Key key_of(uint64_t space, int64_t limit_id, Text x, Text y) {
    uint64_t id = mix(static_cast<uint64_t>(limit_id) ^ mix(space + UINT64_C(0x452821E638D01377)));
    Key k;
    k.a = hash_text(y, hash_text(x, mix(id ^ UINT64_C(0x243F6A8885A308D3))));
    k.b = hash_text(y, hash_text(x, mix(id ^ UINT64_C(0x13198A2E03707344)) ^ 1));
    if (k.empty()) k.b = 1;
    return k;
}

Key in_space(Key k, uint64_t space) {
    Key o{k.a ^ mix(space + UINT64_C(0xA4093822299F31D0)), k.b};
    if (o.empty()) o.b = 1;
    return o;
}

Budget& budget_in(Cell& c, Micros window) {
    if (c.budget.window != window) c.budget = Budget{window, 0, 0, false};
    return c.budget;
}

void budget_touched(Cell& c, Micros now) {
    // a cell that holds reservations is never reused: their release and
    // settlement must find it
    c.free_at = c.budget.reserved > 0 ? kMaxTime : (now > kMaxTime - kBudgetKeep ? kMaxTime : now + kBudgetKeep);
}

void unreserve(Cell& c, const Hold& h) {
    if (!(c.key == h.key) || c.budget.window != h.window) return;
    c.budget.reserved = std::max<i128>(0, c.budget.reserved - h.n);
}

Micros free_at_after(const GcraState& s, const Rate& r) {
    i128 t = (s.tat + r.max - 1) / r.max;
    return t > static_cast<i128>(kMaxTime) ? kMaxTime : static_cast<Micros>(t);
}

size_t CellTable::bytes(uint32_t stripes, uint32_t ways) {
    return sizeof(Cell) * stripes * ways + sizeof(Stripe) * stripes;
}

CellTable::CellTable(void* mem, uint32_t stripes, uint32_t ways)
    : cells_(static_cast<Cell*>(mem)),
      stripe_state_(reinterpret_cast<Stripe*>(static_cast<char*>(mem) + sizeof(Cell) * stripes * ways)),
      stripes_(stripes),
      ways_(ways) {
    if (stripes == 0 || ways == 0) throw Error(Code::InvalidValue, "a cell table has at least one slot");
}

bool CellTable::enter_commit(uint32_t s) {
    if (stripe_state_[s].barrier) return false;
    ++stripe_state_[s].pending;
    return true;
}

void CellTable::leave_commit(uint32_t s) {
    if (stripe_state_[s].pending > 0) --stripe_state_[s].pending;
}

bool CellTable::raise_barrier(uint32_t s) {
    if (stripe_state_[s].barrier) return false;
    stripe_state_[s].barrier = 1;
    return true;
}

bool CellTable::barred(uint32_t s) const { return stripe_state_[s].barrier != 0; }

bool CellTable::quiet(uint32_t s) const { return stripe_state_[s].pending == 0; }

void CellTable::lower_barrier(uint32_t s) { stripe_state_[s].barrier = 0; }

Cell* CellTable::find(const Key& k, Micros now) {
    Cell* stripe = cells_ + static_cast<size_t>(stripe_of(k)) * ways_;
    for (int pass = 0; pass < 2; ++pass) {
        uint32_t start = static_cast<uint32_t>(k.b % ways_);
        Cell* reusable = nullptr;
        bool ended = false;  // reached a never-used slot
        for (uint32_t i = 0; i < ways_; ++i) {
            Cell* c = stripe + (start + i) % ways_;
            if (c->key == k) return c;
            if (c->key.empty()) {
                if (!reusable) reusable = c;
                ended = true;
                break;  // the key was never placed beyond a never-used slot
            }
            if (!reusable && c->free_at <= now) reusable = c;
        }
        if (!ended && pass == 0 && compact(stripe, now)) continue;
        if (!reusable) return nullptr;
        *reusable = Cell{};
        reusable->key = k;
        return reusable;
    }
    return nullptr;
}

bool CellTable::compact(Cell* stripe, Micros now) {
    // every slot was used once: without never-used slots, each absent key
    // would scan the whole stripe. Drop the drained buckets and place the
    // live ones again from their own slots, so probes end early again.
    uint32_t live = 0;
    for (uint32_t i = 0; i < ways_; ++i)
        if (stripe[i].free_at > now) stripe[live++] = stripe[i];
    if (live == ways_) return false;
    for (uint32_t i = live; i < ways_; ++i) stripe[i] = Cell{};
    // move the live cells out of the front, then place them by their keys
    for (uint32_t i = live; i-- > 0;) {
        Cell c = stripe[i];
        stripe[i] = Cell{};
        uint32_t at = static_cast<uint32_t>(c.key.b % ways_);
        while (!stripe[at].key.empty()) at = (at + 1) % ways_;
        stripe[at] = c;
    }
    return true;
}

Cell* CellTable::peek(const Key& k) const {
    Cell* stripe = cells_ + static_cast<size_t>(stripe_of(k)) * ways_;
    uint32_t start = static_cast<uint32_t>(k.b % ways_);
    for (uint32_t i = 0; i < ways_; ++i) {
        Cell* c = stripe + (start + i) % ways_;
        if (c->key == k) return c;
        if (c->key.empty()) return nullptr;
    }
    return nullptr;
}

size_t ReservationTable::bytes(uint32_t capacity) {
    size_t h = (sizeof(Header) + alignof(Reservation) - 1) / alignof(Reservation) * alignof(Reservation);
    return h + sizeof(Reservation) * capacity;
}

ReservationTable::ReservationTable(void* mem, uint32_t capacity) : capacity_(capacity) {
    if (capacity == 0) throw Error(Code::InvalidValue, "a reservation table has at least one slot");
    size_t h = (sizeof(Header) + alignof(Reservation) - 1) / alignof(Reservation) * alignof(Reservation);
    header_ = static_cast<Header*>(mem);
    slots_ = reinterpret_cast<Reservation*>(static_cast<char*>(mem) + h);
}

void ReservationTable::init(uint64_t salt) {
    header_->salt = salt & ~(UINT64_C(1) << 63);
    header_->next_expiry = kMaxTime;
}

void ReservationTable::note_budget(const Reservation& r) {
    header_->next_expiry = std::min(header_->next_expiry, r.expires_at);
}

int ReservationTable::expire(Micros now, Reservation* out, int max) {
    int n = 0;
    Micros next = kMaxTime;
    for (uint32_t i = 0; i < capacity_; ++i) {
        Reservation* r = slots_ + i;
        if (r->id == 0 || !r->budget) continue;
        if (r->expires_at > now || n == max) {
            next = std::min(next, r->expires_at);
            continue;
        }
        out[n++] = *r;
        free(r);
    }
    header_->next_expiry = next;
    return n;
}

Reservation* ReservationTable::claim(Micros now, Micros ttl) {
    if (header_->full_until > now) return nullptr;
    Micros frees_at = kMaxTime;
    for (uint32_t i = 0; i < capacity_; ++i) {
        uint32_t at = (header_->cursor + i) % capacity_;
        Reservation* r = slots_ + at;
        // an expired budget's hold is given back by expire, not forgotten
        if (r->id != 0 && (r->expires_at > now || r->budget)) {
            if (!r->budget) frees_at = std::min(frees_at, r->expires_at);
            continue;
        }
        header_->cursor = (at + 1) % capacity_;
        uint64_t id;
        do {  // the slot in the low part, scrambled; never 0 (free)
            uint64_t seq = ++header_->seq;
            id = ((seq * capacity_ + at) ^ header_->salt) & ~(UINT64_C(1) << 63);
        } while (id == 0);
        r->id = id;
        r->expires_at = now > kMaxTime - ttl ? kMaxTime : now + ttl;
        r->nholds = 0;
        r->budget = false;
        return r;
    }
    header_->full_until = frees_at;
    return nullptr;
}

Reservation* ReservationTable::find(uint64_t id, Micros now) {
    if (id == 0 || id >> 63) return nullptr;
    Reservation* r = slots_ + ((id ^ header_->salt) % capacity_);
    if (r->id != id || r->expires_at <= now) return nullptr;
    return r;
}

void give_back(GcraState& s, const Rate& r, Micros now, int64_t n) {
    const i128 t = static_cast<i128>(now) * r.max;
    if (s.tat <= t) return;
    s.tat = std::max(t, s.tat - static_cast<i128>(r.period) * n);
}

void charge(GcraState& s, const Rate& r, Micros now, int64_t n) {
    const i128 t = static_cast<i128>(now) * r.max;
    s.tat = std::max(s.tat, t) + static_cast<i128>(r.period) * n;
}

}  // namespace pgm::limits
