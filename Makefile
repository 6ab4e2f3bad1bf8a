# pg_meter: PGXS build of the extension (the C++ core and the glue in one
# shared library). The core alone builds and tests with CMake (CMakeLists.txt).
EXTENSION = pg_meter
MODULE_big = pg_meter
DATA = $(wildcard pg_meter--*.sql)

CORE_SRCS = $(wildcard src/core/*.cpp)
GLUE_SRCS = $(wildcard src/pg/*.cpp)
OBJS = $(CORE_SRCS:.cpp=.o) $(GLUE_SRCS:.cpp=.o)

PG_CPPFLAGS = -I$(srcdir)/src/core -I$(srcdir)/src/pg
PG_CXXFLAGS = -std=c++17 -O2 -fPIC -Wall -Wno-register -Wno-missing-field-initializers
SHLIB_LINK = -lstdc++
# Debian's PGXS would build LLVM bitcode from C++ with clang++; not needed.
override with_llvm = no

# setup first (shared helpers), then the rest in name order, dashboard last:
# its events, limits and prices would shift what the other files count and number
REGRESS = setup $(filter-out setup dashboard,$(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))) dashboard
REGRESS_OPTS = --load-extension=pg_meter

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# C++ objects: PGXS has no rule for .cpp with our flags, so give one.
%.o: %.cpp
	$(CXX) $(PG_CXXFLAGS) $(CPPFLAGS) -c -o $@ $<

# every object depends on every header: the tree is small, and a stale
# object linked against a changed header is a bug that loads at runtime
$(OBJS): $(wildcard src/core/*.hpp src/pg/*.hpp)
