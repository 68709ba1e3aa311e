// What the load and fault tests share (tests/router/migration.cpp, tests/faults/storm.cpp): the
// backend headers weft_link_backends(<target> WEFT_TEST) linked in, and the execution log the
// scripts count step executions from.
#pragma once

#if WEFT_TEST_CELERY
#include <weft/celery.hpp>
#endif
#if WEFT_TEST_TEMPORAL
#include <weft/temporal.hpp>
#endif
#if WEFT_TEST_HATCHET
#include <weft/hatchet.hpp>
#endif
#if WEFT_TEST_DURABLE
#include <weft/durable.hpp>
#endif

#include <cstdlib>
#include <fcntl.h>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unistd.h>

namespace test_exec_log {

// Appends `line` and a newline to WEFT_TEST_EXEC_LOG (nothing when unset), in one O_APPEND write,
// so the lines of concurrent workers never interleave.
inline void append(std::string_view line) {
    const char* path = std::getenv("WEFT_TEST_EXEC_LOG");
    if (!path) return;
    const std::string text = std::string(line) + "\n";
    const int fd = ::open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) throw std::runtime_error(std::string("cannot open ") + path);
    const ssize_t n = ::write(fd, text.data(), text.size());
    ::close(fd);
    if (n != ssize_t(text.size())) throw std::runtime_error("short write to the execution log");
}

}  // namespace test_exec_log
