# realtimed build. `make` builds build/realtimed; `make check` runs the C unit
# tests and replays the fuzz corpora; `make SAN=1` builds everything with
# ASan+UBSan into build-san/. Honours CC, CFLAGS, LDFLAGS, PREFIX, DESTDIR.
CC      ?= cc
PREFIX  ?= /usr/local
SAN     ?=
O       := $(if $(SAN),build-san,build)

WARN    := -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes
ifeq ($(CI),true)
WARN    += -Werror
endif
OPT     ?= -O2 -g
SANITIZE := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
SANFL   := $(if $(SAN),$(SANITIZE),)
VERSION := 0.1.0
PROJ_CFLAGS := -DREALTIMED_VERSION=\"$(VERSION)\" -std=gnu11 $(WARN) $(OPT) $(SANFL) -Isrc -D_GNU_SOURCE -MMD -MP
LIBS    := -lcrypto -lhiredis -ljansson -lz -lm
# libcurl is dlopen()ed by src/frappe/fetch.c on first use (see there).
LDALL   := $(SANFL) $(LDFLAGS)

LIB_SRC := $(sort $(filter-out src/app/%,$(wildcard src/*/*.c)))
APP_SRC := $(sort $(wildcard src/app/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(O)/%.o)
APP_OBJ := $(APP_SRC:%.c=$(O)/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(O)/tests/%)
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(O)/fuzz/%-replay)
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(O)/bench/%)

.PHONY: all check unit fuzz-replay fuzz bench-bin clean install uninstall bench man
all: $(O)/realtimed $(UNIT_BIN) $(FUZZ_REPLAY) $(BENCH_BIN)

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(PROJ_CFLAGS) $(CFLAGS) -c $< -o $@

$(O)/librealtimed.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(O)/realtimed: $(APP_OBJ) $(O)/librealtimed.a
	$(CC) $(LDALL) -o $@ $^ $(LIBS)

$(O)/tests/%: tests/unit/%.c tests/unit/test.h $(O)/librealtimed.a
	@mkdir -p $(dir $@)
	$(CC) $(PROJ_CFLAGS) $(CFLAGS) -Itests/unit $(LDALL) -o $@ $< $(O)/librealtimed.a $(LIBS)

$(O)/fuzz/%-replay: tests/fuzz/%.c tests/fuzz/replay.c $(O)/librealtimed.a
	@mkdir -p $(dir $@)
	$(CC) $(PROJ_CFLAGS) $(CFLAGS) $(LDALL) -o $@ $< tests/fuzz/replay.c $(O)/librealtimed.a $(LIBS)

$(O)/bench/%: bench/%.c $(O)/librealtimed.a
	@mkdir -p $(dir $@)
	$(CC) $(PROJ_CFLAGS) $(CFLAGS) $(LDALL) -o $@ $< $(O)/librealtimed.a $(LIBS)

unit: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do $$t || fail=1; done; exit $$fail

fuzz-replay: $(FUZZ_REPLAY)
	@fail=0; for f in $(FUZZ_REPLAY); do n=$$(basename $$f -replay); n=$${n#fuzz_}; \
	  $$f tests/fuzz/corpus/$$n || fail=1; done; exit $$fail

check: all unit fuzz-replay

# libFuzzer binaries (clang only): make fuzz; then build-fuzz/fuzz_http -max_total_time=60 tests/fuzz/corpus/http
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
fuzz: $(FUZZ_BIN)
build-fuzz/%: tests/fuzz/%.c $(LIB_SRC)
	@mkdir -p build-fuzz
	clang -DREALTIMED_VERSION=\"$(VERSION)\" -std=gnu11 -g -O1 -Isrc -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -o $@ $< $(LIB_SRC) $(LIBS)

bench:
	./bench/run.sh
	./bench/standalone.sh
	taskset -c 1 node bench/delivery.mjs

# The app-handler hosts go to <prefix>/share/realtimed/host, where the
# installed binary looks for them (next to bin/).
HOST_FILES := $(wildcard host/*.js host/*.py)
CLIENT_DIST := tests/node_modules/socket.io-client/dist
install: $(O)/realtimed
	install -D -m 0755 $(O)/realtimed $(DESTDIR)$(PREFIX)/bin/realtimed
	install -D -m 0644 docs/realtimed.8 $(DESTDIR)$(PREFIX)/share/man/man8/realtimed.8
	install -d $(DESTDIR)$(PREFIX)/share/realtimed/host
	install -m 0644 $(HOST_FILES) $(DESTDIR)$(PREFIX)/share/realtimed/host/
	@# the socket.io-client bundle (--serve-client), from the package install-deps brings
	@if [ -f $(CLIENT_DIST)/socket.io.min.js ]; then \
	  install -d $(DESTDIR)$(PREFIX)/share/realtimed/client && \
	  install -m 0644 $(CLIENT_DIST)/socket.io*.js $(CLIENT_DIST)/socket.io*.js.map $(DESTDIR)$(PREFIX)/share/realtimed/client/ && \
	  sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' $(CLIENT_DIST)/../package.json | head -1 > $(DESTDIR)$(PREFIX)/share/realtimed/client/VERSION; \
	fi

# docs/realtimed.8 is generated from the options table (tests check it)
man: $(O)/realtimed
	$(O)/realtimed --help-man > docs/realtimed.8
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/realtimed $(DESTDIR)$(PREFIX)/share/man/man8/realtimed.8
	rm -rf $(DESTDIR)$(PREFIX)/share/realtimed
clean:
	rm -rf build build-san build-fuzz build-clang

-include $(LIB_OBJ:.o=.d) $(APP_OBJ:.o=.d)
