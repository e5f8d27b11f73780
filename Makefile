# lnfree: `make test` installs what is missing (Debian packages; Python packages in .venv), builds, runs the C++
# tests, the Python tests (interoperability with transformers and TransformerLens, data scripts), checks that the
# committed fixtures are what the PyTorch twin writes today, and runs each fuzz target briefly.
# `make fixtures` regenerates the PyTorch twin's fixtures under test/fixtures.

CXX ?= g++
CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++20 -Wall -Wextra -fopenmp -I. -MMD -MP -DLNFREE_SOURCE_DIR=\"$(CURDIR)\"
BUILD := build

LIB_SRC := $(wildcard lnfree/*.cpp)
TEST_SRC := $(wildcard test/*.cpp)
LIB_OBJ := $(LIB_SRC:%.cpp=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.cpp=$(BUILD)/%.o)

.PHONY: all test setup fixtures clean
all: $(BUILD)/test_lnfree $(BUILD)/lnfree_tool

setup:
	@bash dev/setup.sh --python

test: setup
	@$(MAKE) --no-print-directory all
	OMP_NUM_THREADS=2 ./$(BUILD)/test_lnfree
	.venv/bin/python -m pytest -q test/python
	.venv/bin/python dev/pytorch_twin.py --out $(BUILD)/fixtures --check test/fixtures
	bash dev/fuzz.sh --runs 20000

$(BUILD)/test_lnfree: $(TEST_OBJ) $(LIB_OBJ)
	$(CXX) $(CXXFLAGS) -o $@ $^

$(BUILD)/lnfree_tool: $(BUILD)/dev/lnfree_tool.o $(LIB_OBJ)
	$(CXX) $(CXXFLAGS) -o $@ $^

$(BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c -o $@ $<

fixtures: setup
	.venv/bin/python dev/pytorch_twin.py --out test/fixtures

clean:
	rm -rf $(BUILD)

-include $(TEST_OBJ:.o=.d) $(LIB_OBJ:.o=.d) $(BUILD)/dev/lnfree_tool.d
