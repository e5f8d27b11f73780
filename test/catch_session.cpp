// Catch2's implementation, compiled once and linked into every test binary (test_lnfree, the ASan and GPU kernel
// tests, the MPI test): it is the slowest file of the suite to compile (about 30 s). The mains are test/main.cpp
// and test/mpi/test_mpi_group.cpp's own.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "test/catch_session.h"

int run_catch_session(int argc, char** argv) { return Catch::Session().run(argc, argv); }
