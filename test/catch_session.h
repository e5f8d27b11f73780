// Catch2's session: runs the tests the command line selects. Its implementation, in test/catch_session.cpp, is
// compiled once and linked into every test binary.
#pragma once

int run_catch_session(int argc, char** argv);
