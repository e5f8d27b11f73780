# lnfree: `make test` installs what is missing (Debian packages, and numpy + torch in .venv), builds and runs every
# test, then checks that the committed fixtures are what the PyTorch twin writes today.
# `make fixtures` regenerates the PyTorch twin's fixtures under test/fixtures.

CXX ?= g++
CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++20 -Wall -Wextra -fopenmp -I. -MMD -MP -DLNFREE_SOURCE_DIR=\"$(CURDIR)\"
BUILD := build

LIB_SRC := lnfree/safetensors.cpp
TEST_SRC := $(wildcard test/*.cpp)
LIB_OBJ := $(LIB_SRC:%.cpp=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.cpp=$(BUILD)/%.o)

.PHONY: all test setup fixtures clean
all: $(BUILD)/test_lnfree

setup:
	@bash dev/setup.sh --python

test: setup
	@$(MAKE) --no-print-directory $(BUILD)/test_lnfree
	OMP_NUM_THREADS=2 ./$(BUILD)/test_lnfree
	.venv/bin/python dev/pytorch_twin.py --out $(BUILD)/fixtures --check test/fixtures

$(BUILD)/test_lnfree: $(TEST_OBJ) $(LIB_OBJ)
	$(CXX) $(CXXFLAGS) -o $@ $^

$(BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c -o $@ $<

fixtures: setup
	.venv/bin/python dev/pytorch_twin.py --out test/fixtures

clean:
	rm -rf $(BUILD)

-include $(TEST_OBJ:.o=.d) $(LIB_OBJ:.o=.d)
