#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "cells.hpp"
#include "error.hpp"

using namespace pgm;
using namespace pgm::limits;

namespace {
constexpr Micros kSec = 1000000;
constexpr Micros kMin = 60 * kSec;

Text T(const std::string& s) { return Text{s.data(), s.size()}; }

struct Table {
    std::vector<unsigned char> mem;
    CellTable t;
    Table(uint32_t stripes, uint32_t ways)
        : mem(CellTable::bytes(stripes, ways)), t((std::fill(mem.begin(), mem.end(), 0), mem.data()), stripes, ways) {}
};

// take one request of a rate in the cell of key k; false when the table is full
bool take(CellTable& t, const Key& k, const Rate& r, Micros now, bool* allowed = nullptr) {
    Cell* c = t.find(k, now);
    if (!c) return false;
    Answer a = gcra(c->state, r, now, 1, true);
    c->free_at = free_at_after(c->state, r);
    if (allowed) *allowed = a.allowed;
    return true;
}
}  // namespace

TEST(Keys, DifferByLimitAndEveryPartAndNullIsNotEmpty) {
    std::set<std::pair<uint64_t, uint64_t>> seen;
    auto add = [&](Key k) {
        EXPECT_FALSE(k.empty());
        return seen.insert({k.a, k.b}).second;
    };
    EXPECT_TRUE(add(key_of(1, 1, T("alice"))));
    EXPECT_TRUE(add(key_of(1, 2, T("alice"))));
    EXPECT_TRUE(add(key_of(1, 1, T("bob"))));
    EXPECT_TRUE(add(key_of(1, 1, Text{})));
    EXPECT_TRUE(add(key_of(1, 1, T(""))));
    EXPECT_TRUE(add(key_of(1, 1, T("alice"), T("/poll"))));
    EXPECT_TRUE(add(key_of(1, 1, T("alice/"), T("poll"))));  // parts do not run together
    EXPECT_TRUE(add(key_of(2, 1, T("alice"))));            // another database
    EXPECT_FALSE(add(key_of(1, 1, T("alice"))));              // the same key again
}

TEST(CellTable, FindsTheSameCellAndPeekNeverClaims) {
    Table tb(4, 8);
    Key k = key_of(1, 7, T("s1"));
    EXPECT_EQ(tb.t.peek(k), nullptr);
    Cell* c = tb.t.find(k, 0);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(tb.t.find(k, 0), c);
    EXPECT_EQ(tb.t.peek(k), c);
    EXPECT_EQ(tb.t.peek(key_of(1, 7, T("s2"))), nullptr);
}

TEST(CellTable, AFullStripeRefusesANewKeyUntilABucketDrains) {
    Table tb(1, 4);
    Rate r{2, kMin};  // a bucket of 2 drains 30 s after one request
    Micros t0 = 1000 * kSec;
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(take(tb.t, key_of(1, 1, T("k" + std::to_string(i))), r, t0));
    Key late = key_of(1, 1, T("late"));
    EXPECT_EQ(tb.t.find(late, t0), nullptr);              // four live buckets: full
    EXPECT_EQ(tb.t.find(late, t0 + 30 * kSec - 1), nullptr);
    Cell* c = tb.t.find(late, t0 + 30 * kSec);            // all drained: a slot is reused
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->state.tat, 0);
    // every old key still finds its own state or a fresh one, never another key's
    for (int i = 0; i < 4; ++i) {
        Cell* o = tb.t.find(key_of(1, 1, T("k" + std::to_string(i))), t0 + 30 * kSec);
        if (o) {
            EXPECT_TRUE(o->key == key_of(1, 1, T("k" + std::to_string(i))));
        }
    }
}

TEST(CellTable, ReusingADrainedSlotKeepsLaterKeysOfTheProbeReachable) {
    Table tb(1, 8);
    Rate r{1, kSec};
    std::vector<Key> keys;
    for (int i = 0; i < 6; ++i) keys.push_back(key_of(1, 3, T("p" + std::to_string(i))));
    Micros t0 = 50 * kSec;
    for (size_t i = 0; i < keys.size(); ++i) ASSERT_TRUE(take(tb.t, keys[i], r, t0 + static_cast<Micros>(i) * kSec));
    // at t0 + 5.5 s, the buckets of p0..p4 have drained, p5's has not
    Micros now = t0 + 5 * kSec + kSec / 2;
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(take(tb.t, key_of(1, 3, T("new" + std::to_string(i))), r, now));
    // p5 still holds its bucket: a second request within its second is refused
    bool allowed = true;
    ASSERT_TRUE(take(tb.t, keys[5], r, now, &allowed));
    EXPECT_FALSE(allowed);
}

TEST(CellTable, ManyKeysSpreadOverStripes) {
    Table tb(16, 64);
    Rate r{5, kMin};
    int placed = 0;
    for (int i = 0; i < 600; ++i) placed += take(tb.t, key_of(1, 9, T("user-" + std::to_string(i))), r, 0) ? 1 : 0;
    EXPECT_EQ(placed, 600);  // 59 % full: no stripe overflows
    for (int i = 0; i < 600; ++i) EXPECT_NE(tb.t.peek(key_of(1, 9, T("user-" + std::to_string(i)))), nullptr) << i;
}

TEST(Reservations, IdsAreUniqueAndAnEndedIdNeverFindsANewerOne) {
    std::vector<unsigned char> mem(ReservationTable::bytes(2), 0);
    ReservationTable rt(mem.data(), 2);
    Reservation* a = rt.claim(0, kMin);
    Reservation* b = rt.claim(0, kMin);
    ASSERT_TRUE(a && b);
    EXPECT_NE(a->id, b->id);
    EXPECT_EQ(rt.claim(0, kMin), nullptr);  // both slots live
    uint64_t old = a->id;
    EXPECT_EQ(rt.find(old, 0), a);
    rt.free(a);
    EXPECT_EQ(rt.find(old, 0), nullptr);
    Reservation* c = rt.claim(0, kMin);
    ASSERT_EQ(c, a);  // the slot again, under a new id
    EXPECT_NE(c->id, old);
    EXPECT_EQ(rt.find(old, 0), nullptr);
    EXPECT_EQ(rt.find(0, 0), nullptr);
    EXPECT_EQ(rt.find(c->id ^ 1, 0), nullptr);  // a neighbouring id is nobody's
}

TEST(Reservations, AFullTableAnswersUntilItsFirstExpiryOrAFree) {
    // a full table remembers when its first slot frees by itself, and a
    // free (a release, a settlement, an expired budget) ends that at once
    std::vector<unsigned char> mem(ReservationTable::bytes(3), 0);
    ReservationTable rt(mem.data(), 3);
    Reservation* a = rt.claim(0, 30);
    Reservation* b = rt.claim(0, 20);
    Reservation* c = rt.claim(0, 40);
    ASSERT_TRUE(a && b && c);
    EXPECT_EQ(rt.claim(5, 10), nullptr);
    EXPECT_EQ(rt.claim(19, 10), nullptr);
    Reservation* d = rt.claim(20, 100);  // b's slot, at b's expiry
    EXPECT_EQ(d, b);
    EXPECT_EQ(rt.claim(21, 10), nullptr);  // full again: a frees at 30
    rt.free(c);
    EXPECT_EQ(rt.claim(21, 10), c);
    EXPECT_EQ(rt.claim(29, 10), nullptr);
    EXPECT_EQ(rt.claim(30, 10), a);
}

TEST(Reservations, AnIdFromBeforeARestartFindsNothingAfterIt) {
    // a restart: the same memory zeroed, a new salt; the slots are taken
    // again in the same order with the same sequence numbers
    std::vector<unsigned char> mem(ReservationTable::bytes(4), 0);
    std::vector<uint64_t> before;
    {
        ReservationTable rt(mem.data(), 4);
        rt.init(UINT64_C(0x1234567890ABCDEF));
        for (int i = 0; i < 4; ++i) before.push_back(rt.claim(0, kMin)->id);
    }
    std::fill(mem.begin(), mem.end(), 0);
    ReservationTable rt(mem.data(), 4);
    rt.init(UINT64_C(0x0FEDCBA987654321));
    for (int i = 0; i < 4; ++i) {
        Reservation* r = rt.claim(0, kMin);
        ASSERT_NE(r, nullptr);
        EXPECT_LT(r->id, UINT64_C(1) << 63);  // a positive bigint
        for (uint64_t old : before) EXPECT_NE(r->id, old);
    }
    for (uint64_t old : before) EXPECT_EQ(rt.find(old, 0), nullptr);
}

TEST(Reservations, ExpireAtTheirTimeToLive) {
    std::vector<unsigned char> mem(ReservationTable::bytes(1), 0);
    ReservationTable rt(mem.data(), 1);
    Reservation* a = rt.claim(100, 10);
    ASSERT_NE(a, nullptr);
    uint64_t id = a->id;
    EXPECT_EQ(rt.find(id, 109), a);
    EXPECT_EQ(rt.find(id, 110), nullptr);
    EXPECT_EQ(rt.claim(109, 10), nullptr);
    Reservation* b = rt.claim(110, 10);  // the expired slot is taken again
    ASSERT_NE(b, nullptr);
    EXPECT_NE(b->id, id);
}

TEST(Settlement, GiveBackAndChargeMoveTheBucketExactly) {
    Rate r{1000, kMin};  // tokens a minute
    GcraState s;
    Micros t0 = 10 * kMin;
    ASSERT_TRUE(gcra(s, r, t0, 600, true).allowed);  // an estimate of 600
    EXPECT_EQ(gcra(s, r, t0, 0, false).remaining, 400);
    give_back(s, r, t0, 200);  // the call used 400
    EXPECT_EQ(gcra(s, r, t0, 0, false).remaining, 600);
    charge(s, r, t0, 700);  // another used 700 without asking first
    Answer a = gcra(s, r, t0, 0, false);
    EXPECT_EQ(a.used, 1100);  // over the bucket: later requests wait
    EXPECT_FALSE(gcra(s, r, t0, 1, false).allowed);
    EXPECT_EQ(gcra(s, r, t0, 1, false).retry_after, 6060000);  // 101 tokens drain in 6.06 s
    give_back(s, r, t0 + 2 * kMin, 5);  // a drained bucket stays drained
    EXPECT_EQ(gcra(s, r, t0 + 2 * kMin, 0, false).used, 0);
}

TEST(CellTable, CompactsAStripeWhoseSlotsWereAllUsed) {
    Table tb(1, 8);
    Rate r{1, kSec};
    // 8 keys fill every slot once; they drain after a second
    for (int i = 0; i < 8; ++i) ASSERT_TRUE(take(tb.t, key_of(1, 4, T("a" + std::to_string(i))), r, 0));
    // two of them stay live (taken again at 0.9 s: drained at 1.9 s)
    bool allowed = false;
    ASSERT_TRUE(take(tb.t, key_of(1, 4, T("a0")), r, 900000, &allowed));
    EXPECT_FALSE(allowed);  // within its second
    // at 1.5 s a new key compacts: a0 (refused, so still draining to 1 s)
    // has drained; none is live, every slot is free again
    ASSERT_TRUE(take(tb.t, key_of(1, 4, T("b")), r, 1500000));
    int used = 0;
    for (int i = 0; i < 8; ++i) used += tb.t.peek(key_of(1, 4, T("a" + std::to_string(i)))) ? 1 : 0;
    EXPECT_EQ(used, 0);
    ASSERT_NE(tb.t.peek(key_of(1, 4, T("b"))), nullptr);
    // live buckets survive a compaction with their state
    for (int i = 0; i < 7; ++i) ASSERT_TRUE(take(tb.t, key_of(1, 4, T("c" + std::to_string(i))), r, 2000000));
    // all 8 slots used (b drained at 2.5 s); at 2.6 s a new key compacts and
    // the seven c keys keep their buckets: each refuses a second request
    ASSERT_TRUE(take(tb.t, key_of(1, 4, T("d")), r, 2600000));
    for (int i = 0; i < 7; ++i) {
        ASSERT_TRUE(take(tb.t, key_of(1, 4, T("c" + std::to_string(i))), r, 2600000, &allowed));
        EXPECT_FALSE(allowed) << i;
    }
    EXPECT_EQ(tb.t.peek(key_of(1, 4, T("b"))), nullptr);
}

TEST(BudgetCells, ANewWindowStartsEmptyAndUnseeded) {
    Table tb(1, 8);
    Key k = key_of(0, 0, T("tenant\x1fsubject\x1f" "cost\x1f\x1f" "day@UTC"), T("alice"));
    Cell* c = tb.t.find(k, 0);
    ASSERT_NE(c, nullptr);
    Budget& b = budget_in(*c, 1000);
    EXPECT_FALSE(b.seeded);
    b.used = 40;
    b.reserved = 10;
    b.seeded = true;
    EXPECT_EQ(budget_in(*c, 1000).used, 40);  // the same window: kept
    Budget& next = budget_in(*c, 2000);
    EXPECT_FALSE(next.seeded);
    EXPECT_EQ(next.used, 0);
    EXPECT_EQ(next.reserved, 0);
}

TEST(BudgetCells, AHoldIsGivenBackOnlyToItsWindowAndNeverBelowZero) {
    Table tb(1, 8);
    Key k = key_of(0, 0, T("x"), T("y"));
    Cell* c = tb.t.find(k, 0);
    budget_in(*c, 1000).reserved = 30;
    unreserve(*c, Hold{k, Rate{}, 10, 1000, 4, true});
    EXPECT_EQ(c->budget.reserved, 20);
    unreserve(*c, Hold{k, Rate{}, 10, 999, 4, true});  // an old window's hold
    EXPECT_EQ(c->budget.reserved, 20);
    unreserve(*c, Hold{k, Rate{}, 50, 1000, 4, true});
    EXPECT_EQ(c->budget.reserved, 0);
}

TEST(BudgetCells, AReservedCellIsNeverReusedAnIdleOneAfterItsKeep) {
    Table tb(1, 1);
    Key a = key_of(0, 0, T("a")), b = key_of(0, 0, T("b"));
    Cell* c = tb.t.find(a, 0);
    budget_in(*c, 0).reserved = 5;
    budget_touched(*c, 0);
    EXPECT_EQ(tb.t.find(b, kBudgetKeep * 10), nullptr);  // held: not reused
    c->budget.reserved = 0;
    budget_touched(*c, 0);
    EXPECT_EQ(tb.t.find(b, kBudgetKeep - 1), nullptr);  // idle, but kept a while
    EXPECT_NE(tb.t.find(b, kBudgetKeep), nullptr);
    EXPECT_EQ(tb.t.peek(a), nullptr);
}

TEST(BudgetCells, ASpaceSeparatesCellsOfTheSameCounter) {
    Key k = key_of(0, 0, T("t"), T("s"));
    EXPECT_FALSE(in_space(k, 1) == in_space(k, 2));
    EXPECT_FALSE(in_space(k, 1) == k);
    EXPECT_TRUE(in_space(k, 7) == in_space(k, 7));
}

// The seeding protocol, as the glue runs it: every interleaving of one
// seeder and one commit counts the commit exactly once. The seeder's
// snapshot holds the commit when the commit became visible before the
// seeder read; the commit adds to the cell when the cell was seeded
// before the commit left.
TEST(Seeding, EveryInterleavingOfASeederAndACommitCountsItOnce) {
    // steps of the commit: 0 enter (fails while the barrier is up: retried
    // later), 1 visible, 2 add-if-seeded and leave. Steps of the seeder:
    // 0 raise barrier, 1 wait quiet, 2 read (snapshot), 3 install and lower.
    // Enumerate all orders of the 3 + 4 steps.
    int orders = 0;
    for (int mask = 0; mask < (1 << 7); ++mask) {
        if (__builtin_popcount(static_cast<unsigned>(mask)) != 3) continue;  // bits set: commit steps
        Table tb(1, 4);
        Key k = key_of(0, 0, T("k"));
        Cell* c = tb.t.find(k, 0);
        budget_in(*c, 0);
        int commit_step = 0, seed_step = 0;
        bool visible = false;
        i128 durable = 0;
        std::vector<int> seq;
        for (int i = 0; i < 7; ++i) seq.push_back((mask >> i) & 1);
        // run: a blocked step is retried after the other side's next step
        size_t pos = 0;
        int guard = 0;
        while ((commit_step < 3 || seed_step < 4) && guard++ < 100) {
            bool commit_turn = pos < seq.size() ? seq[pos] == 1 : commit_step < 3;
            if (commit_turn && commit_step == 3) commit_turn = false;
            if (!commit_turn && seed_step == 4) commit_turn = true;
            ++pos;
            if (commit_turn) {
                if (commit_step == 0) {
                    if (!tb.t.enter_commit(0)) continue;  // waits at the barrier
                } else if (commit_step == 1) {
                    visible = true;
                    durable = 7;
                } else {
                    if (c->budget.seeded) c->budget.used += 7;
                    tb.t.leave_commit(0);
                }
                ++commit_step;
            } else {
                if (seed_step == 0) {
                    ASSERT_TRUE(tb.t.raise_barrier(0));
                } else if (seed_step == 1) {
                    if (!tb.t.quiet(0)) continue;  // waits for the pending commit
                } else if (seed_step == 2) {
                    c->budget.used = visible ? durable : 0;
                } else {
                    c->budget.seeded = true;
                    tb.t.lower_barrier(0);
                }
                ++seed_step;
            }
        }
        ASSERT_EQ(commit_step, 3);
        ASSERT_EQ(seed_step, 4);
        EXPECT_EQ(c->budget.used, 7) << "order mask " << mask;
        ++orders;
    }
    EXPECT_EQ(orders, 35);
}

TEST(Reservations, AnExpiredBudgetIsHandedBackNotForgotten) {
    std::vector<unsigned char> mem(ReservationTable::bytes(2), 0);
    ReservationTable rt(mem.data(), 2);
    rt.init(3);
    EXPECT_EQ(rt.next_expiry(), kMaxTime);
    Reservation* r = rt.claim(0, 10);
    r->budget = true;
    r->holds[r->nholds++] = Hold{key_of(0, 0, T("b")), Rate{}, 5, 0, 4, true};
    rt.note_budget(*r);
    EXPECT_EQ(rt.next_expiry(), 10);
    Reservation* plain = rt.claim(0, 10);
    ASSERT_NE(plain, nullptr);
    // both expired: the plain one's slot is claimed again, the budget's is not
    EXPECT_NE(rt.claim(20, 10), nullptr);
    EXPECT_EQ(rt.claim(20, 10), nullptr);
    Reservation out[4];
    EXPECT_EQ(rt.expire(5, out, 4), 0);
    EXPECT_EQ(rt.next_expiry(), 10);
    ASSERT_EQ(rt.expire(20, out, 4), 1);
    EXPECT_EQ(out[0].holds[0].n, 5);
    EXPECT_EQ(rt.next_expiry(), kMaxTime);
    EXPECT_NE(rt.claim(20, 10), nullptr);  // now free
}
