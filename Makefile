# tally — build. `make` builds build/tally; `make MODE=asan` builds the
# ASan+UBSan flavour under build/asan/; `make MODE=tsan build/tsan/tally` the
# ThreadSanitizer server. Sources are picked up by directory:
#   src/lib/**     the library (domain, store, quality): knows nothing of HTTP
#   src/http/*.c   the HTTP front end      src/cli/*.c  the CLI front end
#   tests/unit/test_*.c  one cmocka binary each, linked against the library
MODE ?= release
CC ?= cc
WARN = -Wall -Wextra -Wshadow -Wmissing-prototypes -Werror
BASE = -std=c17 -D_GNU_SOURCE -Isrc/lib -Isrc $(WARN) -MMD -MP
LIBS = -lsqlite3 -ljansson -lsodium -levent -lh2o-evloop -lm -lpthread

ifeq ($(MODE),asan)
  OUT = build/asan
  OPT = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDOPT = -fsanitize=address,undefined
else ifeq ($(MODE),tsan)
  # the server's threads (workers, executor, syncer, checkpointer, refit)
  OUT = build/tsan
  OPT = -O1 -g -fsanitize=thread
  LDOPT = -fsanitize=thread
else
  OUT = build
  OPT = -O2 -g
  LDOPT =
endif

LIB_SRC  := $(wildcard src/lib/*.c) $(wildcard src/lib/*/*.c)
APP_SRC  := $(wildcard src/http/*.c) $(wildcard src/cli/*.c)
TEST_SRC := $(wildcard tests/unit/test_*.c)
BENCH_SRC := $(wildcard bench/*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(OUT)/obj/%.o)
APP_OBJ  := $(APP_SRC:%.c=$(OUT)/obj/%.o) $(OUT)/obj/gen/openapi.o
TESTS    := $(TEST_SRC:tests/unit/%.c=$(OUT)/tests/%)
BENCHES  := $(BENCH_SRC:bench/%.c=$(OUT)/bench/%)
TESTKIT  := $(OUT)/obj/tests/unit/testkit.o
BENCH_COMMON := $(patsubst %.c,$(OUT)/obj/%.o,$(wildcard bench/common/*.c))

all: $(OUT)/tally $(TESTS) $(BENCHES) $(OUT)/bench/libwlog.so $(OUT)/bench/libdiskfault.so

$(OUT)/libtally.a: $(LIB_OBJ)
	@mkdir -p $(@D)
	ar rcs $@ $^

$(OUT)/tally: $(APP_OBJ) $(OUT)/libtally.a
	$(CC) $(OPT) $(LDOPT) -o $@ $(APP_OBJ) $(OUT)/libtally.a $(LIBS)

# tests/unit/testkit.c (helpers, no tests of its own) goes into every test,
# and TEST_OBJ (objects of the front ends, outside libtally.a) into the
# tests that name it
$(OUT)/tests/%: tests/unit/%.c $(TESTKIT) $(OUT)/libtally.a
	@mkdir -p $(@D)
	$(CC) $(BASE) $(OPT) $(LDOPT) -o $@ $< $(TESTKIT) $(TEST_OBJ) $(OUT)/libtally.a $(LIBS) -lcmocka

# the batcher and the handback table belong to the HTTP front end: their
# tests link their objects too
$(OUT)/tests/test_batch: TEST_OBJ = $(OUT)/obj/src/http/batch.o
$(OUT)/tests/test_batch: $(OUT)/obj/src/http/batch.o
$(OUT)/tests/test_handback: TEST_OBJ = $(OUT)/obj/src/http/handback.o
$(OUT)/tests/test_handback: $(OUT)/obj/src/http/handback.o

# what the bench clients share (bench/common/) goes into every bench tool
$(OUT)/bench/%: bench/%.c $(BENCH_COMMON) $(OUT)/libtally.a
	@mkdir -p $(@D)
	$(CC) $(BASE) -Ibench $(OPT) $(LDOPT) -o $@ $< $(BENCH_COMMON) $(OUT)/libtally.a $(LIBS)

# the hello-world ceiling on the server's own HTTP library (h2o)
H2O_COMMON := $(OUT)/obj/bench/h2oloop/h2oloop.o

$(OUT)/bench/hello_h2o: bench/hello_h2o.c $(H2O_COMMON)
	@mkdir -p $(@D)
	$(CC) $(BASE) -Ibench $(OPT) $(LDOPT) -o $@ $< $(H2O_COMMON) -lh2o-evloop

# the power-cut test's write logger: an LD_PRELOAD library, never sanitized
# (it goes in front of whichever tally binary it watches)
$(OUT)/bench/libwlog.so: bench/preload/wlog.c bench/preload/wlog.h bench/preload/shim.h
	@mkdir -p $(@D)
	$(CC) -std=c17 -D_GNU_SOURCE $(WARN) -O2 -g -fPIC -shared -o $@ $< -ldl -lpthread

# the disk-fault tests' shim: while a flag file exists, writes that grow the
# database or its WAL fail with ENOSPC, or their syncs with EIO (not sanitized,
# as above)
$(OUT)/bench/libdiskfault.so: bench/preload/diskfault.c bench/preload/shim.h
	@mkdir -p $(@D)
	$(CC) -std=c17 -D_GNU_SOURCE $(WARN) -O2 -g -fPIC -shared -o $@ $< -ldl -lpthread

# the OpenAPI document is served from inside the binary
$(OUT)/gen/openapi.c: docs/openapi.json scripts/embed
	@mkdir -p $(@D)
	scripts/embed $< tly_openapi_json > $@

$(OUT)/obj/gen/openapi.o: $(OUT)/gen/openapi.c
	@mkdir -p $(@D)
	$(CC) $(OPT) -c -o $@ $<

$(OUT)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(BASE) $(OPT) -c -o $@ $<

clean:
	rm -rf build

.PHONY: all clean
# objects made on the way to a test or bench binary: kept, not rebuilt each time
.SECONDARY: $(TESTKIT) $(BENCH_COMMON)
-include $(LIB_OBJ:.o=.d) $(APP_OBJ:.o=.d) $(BENCH_COMMON:.o=.d) $(TESTKIT:.o=.d) $(H2O_COMMON:.o=.d)
