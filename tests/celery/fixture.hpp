// A file of tests/celery/fixtures/ (bytes recorded from Python Celery 5.7 by capture_fixtures.py).
#pragma once

#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

inline std::string fixture(const std::string& name) {
    std::ifstream in(std::string(WEFT_CELERY_FIXTURES) + "/" + name);
    REQUIRE(in);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}
